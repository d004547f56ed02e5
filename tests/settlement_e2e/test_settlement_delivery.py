"""Settlement acks delivered end to end (SPEC 7.8.7), without a broker: the
terminal's confirmation cursor, the batch envelope, the sync core's
handling of a batch, and the backend's outbox and re-sender."""

import os

import pytest
from hypothesis import given, settings, strategies as st

from daozhang.agent.core import cbor
from daozhang.agent.core.sync import settlement_ack as sa
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.agent.core.sync.settlement_delivery import MAX_BATCH_BYTES, AppliedCursor, decode_batch, encode_batch
from daozhang.agent.core.sync.sync_core import DOWN_KINDS, SyncCore
from daozhang.signing import ed25519_verify
from daozhang.backend.ack import AckSigner
from daozhang.backend.settlement_outbox import Outbox, Resender
from daozhang.backend.store import open_store
from dztest.settlement_e2e import plain_row
from dztest.sync import signer

DEV = "pos-deliv-1"
BACKEND = AckSigner(signer(9))
OTHER = AckSigner(signer(11))


def ack(n, by=BACKEND, dev=DEV, ack_id=None):
    return sa.encode(dev, ack_id or os.urandom(16), 1_800_000_000_000, None,
                     plain_row("R-%d" % n, "%012d" % n), by.kid, by.signer.sign, n)


# -- the terminal's cursor ------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.integers(1, 60).flatmap(
    lambda top: st.tuples(st.just(top), st.permutations(list(range(1, top + 1))),
                          st.lists(st.integers(1, top), max_size=30))))
def test_the_cursor_is_the_longest_processed_prefix_whatever_the_order(case):
    """Invariant: after any arrival order with any duplicates, value is the
    largest n with 1..n all done, and never counts a number not done."""
    top, order, dups = case
    cursor = AppliedCursor()
    done = set()
    for n in list(order[:len(order) // 2]) + dups + list(order[len(order) // 2:]):
        cursor.done(n)
        done.add(n)
        prefix = 0
        while prefix + 1 in done:
            prefix += 1
        assert cursor.value == prefix
        assert all(m > prefix for m in cursor.above)
    assert cursor.value == top and cursor.above == set()
    again = AppliedCursor(*cursor.state())
    assert again.value == top and not again.done(top)


def test_a_gap_holds_the_cursor_until_it_fills():
    cursor = AppliedCursor()
    assert cursor.done(1) and not cursor.done(3) and cursor.value == 1
    assert cursor.state() == [1, [3]]
    assert cursor.done(2) and cursor.value == 3 and cursor.above == set()


# -- the batch envelope ------------------------------------------------------------------

def test_a_batch_round_trips_and_an_ordinary_ack_is_not_a_batch():
    acks = [ack(1), ack(2)]
    assert decode_batch(encode_batch(DEV, acks), DEV) == acks
    assert decode_batch(acks[0], DEV) is None
    assert decode_batch(b"\xa0", DEV) is None


@pytest.mark.parametrize("mutate, reason", [
    (lambda m: dict(m, dev="pos-other"), msgs.WRONG_DEVICE),
    (lambda m: dict(m, acks=[]), msgs.SCHEMA),
    (lambda m: dict(m, acks=["text"]), msgs.SCHEMA),
    (lambda m: dict(m, extra=1), msgs.SCHEMA),
])
def test_a_bad_batch_is_rejected_by_name(mutate, reason):
    msg = cbor.loads(encode_batch(DEV, [ack(1)]))
    with pytest.raises(msgs.DownRejected) as exc:
        decode_batch(cbor.dumps(mutate(msg)), DEV)
    assert exc.value.reason == reason


def test_an_oversized_batch_is_rejected():
    big = encode_batch(DEV, [b"x" * 4000] * (MAX_BATCH_BYTES // 4000 + 1))
    with pytest.raises(msgs.DownRejected) as exc:
        decode_batch(big, DEV)
    assert exc.value.reason == msgs.MALFORMED


def test_the_core_authenticates_each_ack_of_a_batch_on_its_own():
    core = SyncCore(DEV, BACKEND.public_bytes, BACKEND.kid, ed25519_verify, lambda seq: None, 0, 0)
    good1, forged, good2 = ack(1), ack(2, by=OTHER), ack(3)
    actions = core.message("acks", encode_batch(DEV, [good1, forged, good2]), 0)
    assert [a[0] for a in actions] == ["reject", "settlements"]
    assert actions[0][1] == msgs.UNKNOWN_KEY
    assert [m["n"] for m, _ in actions[1][1]] == [1, 3]
    assert [p for _, p in actions[1][1]] == [good1, good2]
    assert core.health()["rejected_by_reason"] == {msgs.UNKNOWN_KEY: 1}


def test_n_is_signed():
    payload = ack(5)
    msg = cbor.loads(payload)
    msg["n"] = 4
    with pytest.raises(msgs.DownRejected) as exc:
        msgs.decode_down(cbor.dumps(msg), DEV, BACKEND.public_bytes, BACKEND.kid, ed25519_verify,
                         DOWN_KINDS)
    assert exc.value.reason == msgs.BAD_SIGNATURE


# -- the backend's outbox and re-sender ---------------------------------------------------

class Sent(list):
    def __call__(self, device_id, payload):
        self.append((device_id, [cbor.loads(a)["n"] for a in decode_batch(payload, device_id)]))

    def numbers(self):
        return [n for _, batch in self for n in batch]


@pytest.fixture
def outbox(tmp_path):
    store = open_store(str(tmp_path / "b.db"))
    yield Outbox(store)
    store.close()


def queue(outbox, count, now=1000):
    return outbox.queue_many(DEV, [("R-%d" % i, lambda n: ack(n)) for i in range(count)], now)


def test_pending_until_confirmed_batched_and_paced_by_the_window(outbox):
    assert queue(outbox, 25) == list(range(1, 26))
    assert queue(outbox, 5) == list(range(26, 31))          # numbers go on per device
    sent = Sent()
    resender = Resender(outbox, sent, batch=4, window=10, resend_ms=5000)
    # It comes online: one window, in batches of 4.
    assert resender.on_status(DEV, {"state": "online", "settle_n": 0}, 1000) == 10
    assert [len(b) for _, b in sent] == [4, 4, 2] and sent.numbers() == list(range(1, 11))
    assert resender.tick(2000) == 0                         # nothing due yet
    # The terminal confirms 1..6: the window slides, only the new rows go.
    resender.on_status(DEV, {"state": "online", "settle_n": 6}, 3000)
    assert sent.numbers()[10:] == list(range(11, 17))
    assert outbox.counts(DEV) == {"queued": 30, "pending": 24, "confirmed": 6}
    # Unconfirmed for longer than resend_ms: sent again, same window.
    del sent[:]
    assert resender.tick(9000) == 10 and sent.numbers() == list(range(7, 17))
    # Offline, then online again (its broker session may be gone): the whole window.
    resender.on_status(DEV, {"state": "offline", "settle_n": 6}, 9500)
    del sent[:]
    resender.on_status(DEV, {"state": "online", "settle_n": 6}, 9600)
    assert sent.numbers() == list(range(7, 17))
    resender.on_status(DEV, {"state": "online", "settle_n": 30}, 9700)
    assert outbox.counts() == {"queued": 30, "pending": 0, "confirmed": 30}
    assert outbox.devices_pending() == [] and resender.tick(10 ** 9) == 0


def test_resent_bytes_are_the_bytes_first_signed(outbox):
    queue(outbox, 3)
    payloads = []
    resender = Resender(outbox, lambda d, p: payloads.append(decode_batch(p, d)), resend_ms=1)
    resender.send(DEV, 1000)
    resender.tick(5000)
    assert len(payloads) == 2 and payloads[0] == payloads[1]


def test_a_terminal_online_that_confirms_nothing_is_a_stall_once_until_it_moves(outbox):
    queue(outbox, 3)
    stalls, log = [], []
    resender = Resender(outbox, Sent(), log=lambda event, level="info", **kw: log.append(event),
                        resend_ms=10 ** 9, stall_ms=1000,
                        on_stall=lambda device_id, detail: stalls.append((device_id, detail)))
    resender.on_status(DEV, {"state": "online", "settle_n": 0, "online_since": 1}, 0)
    resender.tick(999)
    assert stalls == []
    resender.tick(1000)
    resender.tick(5000)                                   # raised once
    assert [(d, x["reason"], x["pending"]) for d, x in stalls] == [
        (DEV, "settlement_acks_unconfirmed", 3)]
    resender.on_status(DEV, {"state": "online", "settle_n": 1, "online_since": 1}, 6000)
    assert "sync_moving" in log and resender.stalled == {}
    resender.on_status(DEV, {"state": "offline", "settle_n": 1}, 7000)
    resender.tick(10 ** 6)                                # offline: not a stall
    assert len(stalls) == 1
