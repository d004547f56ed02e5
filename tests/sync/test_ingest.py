"""The backend's per-message checks (SPEC 6.7): each tamper gives one exact
finding, nothing wrong is stored, and nothing is acknowledged past it; in
both signature modes (SPEC 6.7.1: the newest of each run, and every one)."""

import pytest

from daozhang.agent.core import cbor
from daozhang.agent.core.journal import record
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.backend import ingest
from daozhang.backend.store import open_store

from dztest.sync import DEVICE, Pair, make_journal, signer, txn_payload


@pytest.fixture(params=[False, True], ids=["newest-signatures", "all-signatures"])
def pair(tmp_path, request):
    path, journal = make_journal(tmp_path)
    store = open_store(str(tmp_path / "backend.db"))
    for i in range(0, 60, 3):
        journal.append_many([(record.TYPE_TRANSACTION, txn_payload(k)) for k in range(i, i + 3)])
    p = Pair(journal, store, all_signatures=request.param)
    yield p
    journal.close()
    store.close()


def frames(pair, start, max_bytes=1 << 20):
    recs, end, _ = pair.reader.read(start, max_bytes)
    return [r[2] for r in recs]


def reframe(frame, mutate):
    """Decode a frame, change its body, encode it again with a valid CRC."""
    rec = record.decode_at(frame, 0)
    body = [rec.seq, rec.prev, rec.wall_ms, rec.boot_id, rec.mono_ms, dict(rec.payload)]
    mutate(body)
    return record.encode(rec.type, rec.flags, *body)[0]


def kinds(store):
    return [f["kind"] for f in store.findings()]


def test_fork_on_the_wire_is_a_finding_and_not_stored(pair):
    good = frames(pair, 0)
    assert pair.ingestor.receipts(DEVICE, msgs.encode_receipts(DEVICE, good)) is not None
    forged = reframe(good[3], lambda b: b[5].update(amount=1))
    ack = pair.ingestor.receipts(DEVICE, msgs.encode_receipts(DEVICE, [forged]))
    assert kinds(pair.store) == ["fork"]
    assert pair.store.records(DEVICE, from_seq=3, to_seq=3)[0]["frame"] == good[3]
    assert ack is None or cbor.loads(ack)["to"] == len(good)


def test_gap_on_the_wire_becomes_a_finding_after_grace(pair):
    all_frames = frames(pair, 0)
    head, tail = all_frames[:10], all_frames[20:]
    pair.ingestor.receipts(DEVICE, msgs.encode_receipts(DEVICE, head))
    ack = pair.ingestor.receipts(DEVICE, msgs.encode_receipts(DEVICE, tail))
    assert ack is None                                   # never acked past the gap
    pair.ingestor.check_gaps()
    assert kinds(pair.store) == []                       # within grace: maybe reordering
    pair.clock.t += pair.ingestor.gap_grace_ms + 1
    pair.ingestor.check_gaps()
    assert kinds(pair.store) == ["gap"]
    assert pair.store.findings()[0]["seq"] == 10


def test_gap_inside_one_message(pair):
    f = frames(pair, 0)
    pair.ingestor.receipts(DEVICE, msgs.encode_receipts(DEVICE, f[:5] + f[6:12]))
    assert "gap" in kinds(pair.store)
    assert pair.store.head(DEVICE)[0] < 5


def test_wrong_key_and_bad_signature(pair):
    f = frames(pair, 0)
    ck = next(i for i, fr in enumerate(f) if fr[2] == record.TYPE_CHECKPOINT and i > 4)
    other = signer(55)

    def resign(body):
        p = body[5]
        p["kid"] = other.kid
    bad = reframe(f[ck], resign)
    ack = pair.ingestor.receipts(DEVICE, msgs.encode_receipts(DEVICE, f[:ck] + [bad]))
    assert "wrong_key" in kinds(pair.store)
    # Only what a good checkpoint vouched for is stored and acknowledged.
    last_good = max(i for i in range(ck) if f[i][2] == record.TYPE_CHECKPOINT)
    assert ack is not None and cbor.loads(ack)["to"] == last_good + 1
    assert pair.store.head(DEVICE)[0] == last_good

    def flip(body):
        body[5]["sig"] = bytes(64)
    pair2 = reframe(f[ck], flip)
    check = ingest.check_batch(DEVICE, signer(7).public_bytes, msgs.encode_receipts(DEVICE, f[:ck] + [pair2]),
                               all_signatures=pair.ingestor.all_signatures)
    assert [x.kind for x in check.findings] == ["bad_signature"]
    assert all(r["seq"] < ck for r in check.records)


def test_crc_and_chain(pair):
    f = frames(pair, 0)
    broken = bytearray(f[2])
    broken[-1] ^= 0xFF
    mode = pair.ingestor.all_signatures
    check = ingest.check_batch(DEVICE, signer(7).public_bytes,
                               msgs.encode_receipts(DEVICE, f[:2] + [bytes(broken)] + f[3:]), all_signatures=mode)
    assert [x.kind for x in check.findings] == ["bad_frame"]
    relinked = reframe(f[4], lambda b: b.__setitem__(1, bytes(32)))
    check = ingest.check_batch(DEVICE, signer(7).public_bytes,
                               msgs.encode_receipts(DEVICE, f[:4] + [relinked]), all_signatures=mode)
    assert [x.kind for x in check.findings] == ["chain_break"]


def test_foreign_device_and_unknown_device(pair):
    f = frames(pair, 0)
    assert pair.ingestor.receipts("pos-unknown", msgs.encode_receipts("pos-unknown", f)) is None
    assert pair.ingestor.receipts(DEVICE, msgs.encode_receipts("pos-unknown", f)) is None
    assert sorted(kinds(pair.store)) == ["unknown_device", "wrong_device"]
    assert pair.store.stats()["records"] == 0


def test_records_below_the_devices_own_acked_cursor_are_counted_not_a_finding(pair):
    """A device never resends below an `acked` it committed in a checkpoint,
    but a broker restarting from its persistence snapshot redelivers such
    messages: identical bytes, re-acked, counted as `replayed`, no finding."""
    pair.drain()
    acked = pair.journal.noted_cursors()[0]
    assert acked > 5
    pair.journal.append(record.TYPE_TRANSACTION, txn_payload(999))   # a checkpoint carries acked
    pair.drain()
    assert kinds(pair.store) == []
    stored = pair.store.stats()["records"]
    ack = pair.ingestor.receipts(DEVICE, msgs.encode_receipts(DEVICE, frames(pair, 0)[:5]))
    assert ack is not None
    assert kinds(pair.store) == []
    assert pair.ingestor.counts["replayed"] == 1
    assert pair.store.stats()["records"] == stored
