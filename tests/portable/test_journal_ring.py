"""The portable ring over memory storage on both interpreters: commits,
reopen (recovery), a torn tail cut and kept out of the chain, a full
journal refused, and the signer-outage flag (SPEC 3.7, 3.9)."""

from daozhang.agent.core.errors import JournalFull, LocalError
from daozhang.agent.core.journal import record, ring_storage

from portable import kit


def test_commits_survive_reopen_and_chain():
    storage = ring_storage.MemoryStorage(kit.fresh_image())
    ring = ring_storage.open_ring(storage)
    clock = kit.StepClock()
    seqs = []
    for n in range(20):
        seqs.append(ring_storage.commit(storage, ring, [(1, {"n": n, "memo": "x" * 50})], clock.now(), None)[0].seq)
    reopened = ring_storage.open_ring(ring_storage.MemoryStorage(storage.data))
    assert reopened.next_seq == ring.next_seq
    assert reopened.head_hash == ring.head_hash
    recs = kit.records(storage, reopened)
    found = [r.seq for r in recs if r.type == 1]
    assert found == seqs
    prev = recs[0].prev
    for r in recs:
        assert r.prev == prev
        prev = r.hash


def test_without_signer_every_commit_is_a_flagged_outage():
    storage = ring_storage.MemoryStorage(kit.fresh_image())
    ring = ring_storage.open_ring(storage)
    appended = ring_storage.commit(storage, ring, [(1, {"n": 1})], kit.StepClock().now(), None)[0]
    assert ring.outage
    assert appended.checkpoint["alg"] == 0 and appended.checkpoint["sig"] == b""
    assert all(r.flags & record.FLAG_OUTAGE for r in kit.records(storage, ring))


def test_torn_tail_is_cut_and_counted_never_committed_records_kept_out():
    storage = ring_storage.MemoryStorage(kit.fresh_image())
    ring = ring_storage.open_ring(storage)
    clock = kit.StepClock()
    for n in range(5):
        ring_storage.commit(storage, ring, [(1, {"n": n})], clock.now(), None)
    committed = ring.next_seq
    tail = ring.write_pos
    prepared = ring.prepare([(1, {"n": 99, "memo": "y" * 100})], clock.now(), None)
    offset, data = prepared.writes[0]
    torn = data[:len(data) // 2]
    storage.pwrite(offset, torn)                       # power cut mid-commit
    reopened = ring_storage.open_ring(storage)
    assert reopened.next_seq == committed
    assert reopened.write_pos == tail
    # Format 2 pads a commit to a sector boundary with a padding record of
    # zero bytes, so a half-written commit can end in zeros, which read as
    # free space: the cut runs from the tail to the last non-zero byte, and
    # exactly those bytes were kept in the quarantine before being zeroed.
    kept = torn.rstrip(b"\0")
    assert reopened.recovered["cut_bytes"] == len(kept) > 0
    assert reopened.recovered["cut_offset"] == tail == offset
    assert storage.quarantined == [(offset, kept)]
    assert storage.pread(offset, len(data)) == bytes(len(data))     # zeroed only after it was kept


def test_full_journal_refuses_instead_of_dropping():
    storage = ring_storage.MemoryStorage(kit.fresh_image(segment_count=2))
    ring = ring_storage.open_ring(storage)
    clock = kit.StepClock()
    before = None
    try:
        for n in range(500):
            before = ring.next_seq
            ring_storage.commit(storage, ring, [(1, {"n": n, "memo": "z" * 200})], clock.now(), None)
    except JournalFull:
        assert ring.next_seq == before          # the refused commit changed nothing
        return
    raise AssertionError("a journal with nothing acked never filled")


def test_a_payload_encoded_ahead_gives_the_same_record():
    # The intake encodes a sale once (record.Encoded) for its digest and the record.
    times = record.times_bytes(1795564800000, b"\x01" * 8, 42)
    payload = {"kind": "sale", "pos_txn_id": "A-1", "amount": 1250, "note": "x" * 30, "n": [1, -2]}
    ahead = record.encode_tail(1, 0, 7, record.ZERO_HASH, times, record.Encoded(payload))
    assert ahead == record.encode_tail(1, 0, 7, record.ZERO_HASH, times, payload)
    try:
        record.Encoded([1, 2])
    except LocalError:
        pass
    else:
        raise AssertionError("a non-map payload must be refused")
