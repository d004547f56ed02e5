"""The sans-IO sync core against a real backend Ingestor, in memory (SPEC 6).

Tamper tests follow python-tuf: build a message, mutate or re-sign it,
expect one exact rejection reason and the trusted state unchanged.
"""

import pytest
from hypothesis import given, settings, strategies as st

from daozhang.agent.core import cbor
from daozhang.agent.core.journal import record
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.agent.core.sync.sync_core import CONNECTION, MAX_ACK_TIMEOUT_DOUBLINGS, IllegalTransition, SyncCore
from daozhang.signing import ed25519_verify
from daozhang.backend.ack import AckSigner
from daozhang.backend.store import open_store

from dztest.sync import DEVICE, Pair, make_journal, signer, txn_payload


@pytest.fixture
def pair(tmp_path):
    path, journal = make_journal(tmp_path)
    store = open_store(str(tmp_path / "backend.db"))
    p = Pair(journal, store)
    yield p
    journal.close()
    store.close()


def commit_txns(journal, start, count, per_commit=1):
    for i in range(start, start + count, per_commit):
        journal.append_many([(record.TYPE_TRANSACTION, txn_payload(k))
                             for k in range(i, min(i + per_commit, start + count))])


def state_of(core):
    return (core.acked, core.next_send, [list(w) for w in core.window], core.ack_head)


def test_drain_stores_every_record_once_in_order(pair):
    commit_txns(pair.journal, 0, 600, per_commit=7)
    pair.drain()
    next_seq = pair.journal.ring.next_seq
    assert pair.core.acked == next_seq
    rows = pair.store.records(DEVICE)
    assert [r["seq"] for r in rows] == list(range(next_seq))
    assert pair.store.stats()["receipts"] == 600
    assert pair.store.findings() == []
    # Batches stay bounded: no receipts message above the limit (+ one frame).
    assert pair.core.published >= 3


def test_cursors_ride_on_the_next_commit_and_release_only_acked(pair):
    commit_txns(pair.journal, 0, 50)
    pair.drain()
    acked = pair.core.acked
    assert pair.journal.ring.acked < acked           # noted, not committed on its own
    pair.journal.append(record.TYPE_TRANSACTION, txn_payload(999))
    assert pair.journal.ring.acked == acked == pair.journal.ring.released


def test_checkpoints_alone_wait_for_the_slow_timer(pair):
    commit_txns(pair.journal, 0, 10)
    pair.drain()
    published = pair.core.published
    for _ in range(3):
        pair.journal.set_cursors()                   # heartbeats: checkpoint-only commits
        pair.step()
    assert pair.core.published == published          # no ack ping-pong
    pair.clock.t += pair.core.settings["idle_checkpoint_ms"]
    pair.drain()
    assert pair.core.published == published + 1
    assert pair.core.acked == pair.journal.ring.next_seq


def test_alerts_go_up_before_receipts(pair):
    commit_txns(pair.journal, 0, 5)
    pair.core.queue_alert(b"alert-1")
    pair.core.journal_progress(pair.journal.ring.next_seq)
    pair.perform(pair.core.poll(pair.clock()))       # connect
    pair.perform(pair.core.poll(pair.clock()))
    topics = [u[0] for u in pair.up]
    assert topics[:2] == ["status", "alerts"] and "receipts" in topics
    assert topics.index("alerts") < topics.index("receipts")


def _good_ack(pair, to=None, at=1, dev=DEVICE, key=None):
    to = pair.core.next_seq if to is None else to
    head = pair.reader.hash_at(to - 1)
    return (key or pair.backend).receipts_ack(dev, to, head, at)


def _reject_case(pair, payload, reason):
    before = state_of(pair.core)
    actions = pair.core.message("acks", payload, pair.clock())
    assert actions[0][0] == "reject" and actions[0][1] == reason, actions
    assert state_of(pair.core) == before
    assert pair.core.rejected[reason] >= 1


def test_tampered_acks_are_rejected_and_change_nothing(pair):
    commit_txns(pair.journal, 0, 40)
    pair.drain()
    old = _good_ack(pair, to=pair.core.acked - 10)
    commit_txns(pair.journal, 40, 20)
    pair.core.journal_progress(pair.journal.ring.next_seq)
    # forged: another key (its kid is not the backend's), and the right kid with a wrong signature
    _reject_case(pair, _good_ack(pair, key=AckSigner(signer(99))), msgs.UNKNOWN_KEY)
    good = cbor.loads(_good_ack(pair))
    good["sig"] = bytes(64)
    _reject_case(pair, cbor.dumps(good), msgs.BAD_SIGNATURE)
    _reject_case(pair, old, msgs.REPLAY)
    beyond = pair.core.next_seq + 5
    _reject_case(pair, pair.backend.receipts_ack(DEVICE, beyond, bytes(32), 1), msgs.BEYOND_HEAD)
    _reject_case(pair, _good_ack(pair, dev="pos-other"), msgs.WRONG_DEVICE)
    _reject_case(pair, pair.backend.receipts_ack(DEVICE, pair.core.next_seq, bytes(32), 1),
                 msgs.HEAD_MISMATCH)
    _reject_case(pair, b"\xa1\x61", msgs.MALFORMED)
    _reject_case(pair, cbor.dumps([1, 2]), msgs.SCHEMA)
    extra = cbor.loads(_good_ack(pair))
    extra["x"] = 1
    _reject_case(pair, cbor.dumps(extra), msgs.SCHEMA)
    assert pair.core.health()["rejected"] == 9
    # And the genuine one still works afterwards.
    actions = pair.core.message("acks", _good_ack(pair), pair.clock())
    assert actions[0][0] == "ack"


def test_duplicate_ack_is_harmless(pair):
    commit_txns(pair.journal, 0, 5)
    pair.drain()
    ack = _good_ack(pair, to=pair.core.acked)
    assert pair.core.message("acks", ack, pair.clock())[0][0] == "duplicate"
    assert pair.core.rejected == {}


def test_lost_connection_resends_from_acked_and_backend_is_idempotent(pair):
    commit_txns(pair.journal, 0, 300)
    pair.core.journal_progress(pair.journal.ring.next_seq)
    pair.perform(pair.core.poll(pair.clock()))
    pair.perform(pair.core.poll(pair.clock()))
    # the first message reaches the backend, then the link drops; the ack is lost
    first = [u for u in pair.up if u[0] == "receipts"][0]
    pair.ingestor.receipts(DEVICE, first[1])
    pair.up = []
    pair.perform(pair.core.lost(pair.clock(), 0.0, "test"))
    assert pair.core.next_send == pair.core.acked == 0
    pair.drain()
    rows = pair.store.records(DEVICE)
    assert [r["seq"] for r in rows] == list(range(pair.journal.ring.next_seq))


def test_out_of_order_batches_ack_only_contiguous(pair):
    commit_txns(pair.journal, 0, 400)
    recs1, end1, _ = pair.reader.read(0, 20000)
    recs2, end2, _ = pair.reader.read(end1, 20000)
    p1 = msgs.encode_receipts(DEVICE, [r[2] for r in recs1])
    p2 = msgs.encode_receipts(DEVICE, [r[2] for r in recs2])
    assert pair.ingestor.receipts(DEVICE, p2) is None            # a gap: no ack
    ack = cbor.loads(pair.ingestor.receipts(DEVICE, p1))        # links both
    assert ack["to"] == end2
    pair.clock.t += 10 ** 6
    pair.ingestor.check_gaps()
    assert pair.store.findings() == []


def test_a_gap_grouped_with_a_resent_message_is_still_a_gap(pair):
    """Group commit (receipts_many) must judge each message as if it came
    alone: a resent batch joined in one group with a batch beyond a gap
    still opens the gap, which becomes a finding after the grace."""
    commit_txns(pair.journal, 0, 400)
    recs1, end1, _ = pair.reader.read(0, 20000)
    recs2, end2, _ = pair.reader.read(end1, 20000)
    recs3, _, _ = pair.reader.read(end2, 20000)
    p1 = msgs.encode_receipts(DEVICE, [r[2] for r in recs1])
    p3 = msgs.encode_receipts(DEVICE, [r[2] for r in recs3])
    assert cbor.loads(pair.ingestor.receipts(DEVICE, p1))["to"] == end1
    assert pair.ingestor.receipts_many(DEVICE, [p1, p3]) is None     # resent + beyond a gap
    pair.clock.t += 10 ** 6
    pair.ingestor.check_gaps()
    gaps = [f for f in pair.store.findings() if f["kind"] == "gap"]
    assert [g["seq"] for g in gaps] == [end1]


def test_ack_timeouts_in_a_row_back_off_until_an_ack(pair):
    """A backend too slow to ack is not sent the window again every 15 s:
    each timeout in a row doubles the next (up to 8x); an ack resets it."""
    commit_txns(pair.journal, 0, 50)
    pair.core.journal_progress(pair.journal.ring.next_seq)
    base = pair.core.settings["ack_timeout_ms"]

    def sent_up_to_timeout():
        for _ in range(3):                          # connect, then read and publish
            if not pair.core.window:
                pair.perform(pair.core.poll(pair.clock()))
        assert pair.core.window                     # outstanding, never acked
        pair.up = []
        return pair.core.next_wakeup(pair.clock())

    waits = []
    for _ in range(MAX_ACK_TIMEOUT_DOUBLINGS + 2):
        wait = sent_up_to_timeout()
        waits.append(wait)
        pair.clock.t += wait - 1
        assert not any(a[0] == "log" and a[1] == "sync_ack_timeout" for a in pair.core.poll(pair.clock()))
        pair.clock.t += 1
        actions = pair.core.poll(pair.clock())
        assert any(a[0] == "log" and a[1] == "sync_ack_timeout" for a in actions)
        pair.perform(actions)
    assert waits == [base << min(i, MAX_ACK_TIMEOUT_DOUBLINGS) for i in range(len(waits))]
    pair.drain()                                    # the backend answers: acks flow again
    assert pair.core.acked == pair.journal.ring.next_seq
    commit_txns(pair.journal, 50, 5)
    pair.core.journal_progress(pair.journal.ring.next_seq)
    assert sent_up_to_timeout() == base


def test_backoff_is_capped_full_jitter():
    core = SyncCore(DEVICE, bytes(32), bytes(8), ed25519_verify, lambda s: None, 0, 0)
    base, cap = core.settings["backoff_base_ms"], core.settings["backoff_cap_ms"]
    now = 0
    for attempt in range(40):
        core.poll(now)                              # offline -> connecting
        core.lost(now, 0.999999, "x")
        bound = min(cap, base * 2 ** attempt)
        assert bound * 0.99 <= core.retry_at - now <= bound
        now = core.retry_at
    core.poll(now)
    core.lost(now, 0.0, "x")
    assert core.retry_at == now


def test_illegal_transition_raises_and_keeps_state():
    core = SyncCore(DEVICE, bytes(32), bytes(8), ed25519_verify, lambda s: None, 0, 0)
    with pytest.raises(IllegalTransition):
        core.connected(0)
    assert core.state == "offline"
    assert set(s for s, _ in CONNECTION) == {"offline", "connecting", "online"}


# -- fuzz: every decoder of outside bytes -------------------------------------------

KEY = AckSigner(signer(9))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_decode_down_raises_only_downrejected(data):
    """Invariant: decode and authenticate, or raise DownRejected; nothing else."""
    try:
        msgs.decode_down(data, DEVICE, KEY.public_bytes, KEY.kid, ed25519_verify)
    except msgs.DownRejected as exc:
        assert exc.reason in msgs.REASONS


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 200), st.integers(0, 7), st.integers(0, 255))
def test_fuzz_mutated_ack_never_accepted(pos, bit, _):
    """Invariant: any single bit flip of a genuine ack is rejected (or still
    decodes to the very same ack)."""
    good = KEY.receipts_ack(DEVICE, 5, bytes(range(32)), 1234)
    pos %= len(good)
    bad = bytearray(good)
    bad[pos] ^= 1 << bit
    try:
        msg = msgs.decode_down(bytes(bad), DEVICE, KEY.public_bytes, KEY.kid, ed25519_verify)
    except msgs.DownRejected:
        return
    assert cbor.dumps(msg) == good


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_decode_receipts_raises_only_decode_error(data):
    """Invariant: (dev, frames) or DecodeError."""
    from daozhang.agent.core.errors import DecodeError
    try:
        dev, frames = msgs.decode_receipts(data)
        assert isinstance(dev, str) and all(isinstance(f, bytes) for f in frames)
    except DecodeError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=120), min_size=1, max_size=5))
def test_fuzz_backend_check_batch_never_raises(frames):
    """Invariant: check_batch returns findings for junk, never raises, stores nothing bad."""
    from daozhang.backend.ingest import check_batch
    out = check_batch(DEVICE, signer(7).public_bytes, msgs.encode_receipts(DEVICE, frames))
    assert out.records == [] and out.findings


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_backend_frame_decoder(data):
    """Invariant: decode_frame returns a record or raises DecodeError, nothing else."""
    from daozhang.agent.core.errors import DecodeError
    from daozhang.backend.ingest import decode_frame
    try:
        decode_frame(data)
    except DecodeError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=200),
                 st.recursive(st.one_of(st.integers(-5, 2 ** 40), st.text(max_size=8), st.binary(max_size=8),
                                        st.none(), st.booleans()),
                              lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                              max_leaves=10).map(lambda v: cbor.dumps({"v": 1, "dev": DEVICE, "alert": v}))))
def test_fuzz_backend_alert_payloads(tmp_path_factory, payload):
    """Invariant: an alert payload is stored or becomes a `malformed` finding; never an exception."""
    from daozhang.backend.service import Ingestor
    store = _fuzz_store(tmp_path_factory)
    before = store.stats()
    Ingestor(store, KEY).alert(DEVICE, payload)
    after = store.stats()
    delta = after["alerts"] + after["findings"] - before["alerts"] - before["findings"]
    assert delta in (0, 1)      # stored, a finding, or an identical alert again (a no-op)
    assert after["records"] == before["records"]


_STORES = {}


def _fuzz_store(factory):
    if "s" not in _STORES:
        _STORES["s"] = open_store(str(factory.mktemp("fuzz") / "b.db"))
    return _STORES["s"]


# -- the state machine under random networks -------------------------------------------

OPS = st.lists(st.sampled_from(["commit", "commit", "poll", "deliver_up", "drop_up", "deliver_down",
                                "drop_down", "dup_down", "reorder_down", "lose", "timeout"]),
               min_size=5, max_size=60)


@settings(max_examples=25, deadline=None)
@given(OPS)
def test_property_random_network_never_loses_or_lies(tmp_path_factory, ops):
    """Invariants, whatever the network does (drops, duplicates, reorders,
    disconnects, timeouts): acked never moves back, never passes the
    journal's head, only takes values the backend sent; once the network
    behaves, everything is stored exactly once, in order, and acked."""
    tmp = tmp_path_factory.mktemp("prop")
    path, journal = make_journal(tmp)
    store = open_store(str(tmp / "b.db"))
    p = Pair(journal, store)
    sent_to = {0}
    k = [0]
    try:
        last_acked = 0
        for op in ops:
            if op == "commit":
                commit_txns(journal, k[0], 3, per_commit=3)
                k[0] += 3
            elif op == "poll":
                p.core.journal_progress(journal.ring.next_seq)
                p.perform(p.core.poll(p.clock()))
            elif op in ("deliver_up", "drop_up") and p.up:
                topic, payload, token = p.up.pop(0)
                p.perform(p.core.puback(token, p.clock()))
                if op == "deliver_up" and topic == "receipts":
                    ack = p.ingestor.receipts(DEVICE, payload)
                    if ack is not None:
                        sent_to.add(cbor.loads(ack)["to"])
                        p.down.append(ack)
            elif op == "deliver_down" and p.down:
                p.perform(p.core.message("acks", p.down.pop(0), p.clock()))
            elif op == "drop_down" and p.down:
                p.down.pop(0)
            elif op == "dup_down" and p.down:
                p.perform(p.core.message("acks", p.down[0], p.clock()))
            elif op == "reorder_down" and len(p.down) > 1:
                p.down.append(p.down.pop(0))
            elif op == "lose" and p.core.state != "offline":
                p.up = []
                p.perform(p.core.lost(p.clock(), 0.5, "prop"))
                p.clock.t += p.core.settings["backoff_cap_ms"]
            elif op == "timeout":
                p.clock.t += p.core.settings["ack_timeout_ms"]
            assert p.core.acked >= last_acked
            assert p.core.acked <= journal.ring.next_seq
            assert p.core.acked in sent_to
            last_acked = p.core.acked
        # The network behaves from here on.
        p.up, p.down = [], []
        if p.core.state == "offline":
            p.clock.t += p.core.settings["backoff_cap_ms"]
        longest = p.core.settings["ack_timeout_ms"] << MAX_ACK_TIMEOUT_DOUBLINGS
        p.clock.t += longest
        p.drain()
        p.clock.t += longest
        p.drain()
        assert p.core.acked == journal.ring.next_seq
        assert [r["seq"] for r in store.records(DEVICE)] == list(range(journal.ring.next_seq))
        assert store.findings() == []
        # Replays of older acks were rejected as such, never adopted.
        assert set(p.core.rejected) <= {msgs.REPLAY}
    finally:
        journal.close()
        store.close()
