"""Power-loss sweep (SPEC 3.9, 3.10): cut the power after every write and every
sync of a workload that really wraps the ring.

Invariant, after every cut and reopen: recovery succeeds (a power cut is never
mistaken for damage); every record whose commit returned is present with its
hash; the journal reads from its oldest segment to its tail with no gap; the
independent verifier finds nothing but declared cuts; the record walk an
index rebuild makes succeeds; the journal keeps working.  Modes: "drop"
(unsynced writes lost), "tear" (the last write torn, a whole sector garbled,
bytes durable before included), "reorder" (any subset of the unsynced
sectors in any order, one possibly garbled) with 20 seeds per cut; sector
sizes 512 and 4096.
"""

import pytest

from daozhang.agent.core.journal import record, ring_storage
from daozhang.agent.core.journal.ring import Clock
from daozhang.agent.journal_file import JournalFile
from daozhang.host_tools.verify.journal import verify_journal
from dztest.faulty_storage import FaultyStorage, PowerCut
from dztest.journal_kit import fresh_image, make_signer, read_all

SIGNER = make_signer()
REORDER_SEEDS = 20
ALLOWED = {"RecoveryCut", "UncommittedTail"}       # declared cuts, crash residue


def public_key():
    return SIGNER.public_bytes


def workload(storage, committed, steps, reuses):
    """Scripted commits with a signer outage, releases as a backend would ack,
    group commits; record (seq, hash) of each committed record and count the
    commits that reused a segment of an earlier lap."""
    ring = ring_storage.open_ring(storage)
    clock = Clock(1_764_115_200_000, b"\x01" * 8, 0)
    results = ring_storage.commit(storage, ring, [(record.TYPE_BOOT, ring_storage.boot_payload(ring, "test"))],
                            clock, SIGNER)
    committed.update((r.seq, r.hash) for r in results)
    for step in range(steps):
        clock.wall_ms += 1000
        clock.mono_ms += 1000
        signer = None if step in (7, 8) else SIGNER       # a signer outage
        entries = [(record.TYPE_TRANSACTION, {"n": step, "i": i, "memo": "m" * 150})
                   for i in range(1 + step % 3)]
        release = ring.next_seq if step % 4 == 3 else None
        prepared = ring.prepare(entries, clock, signer, release, release)
        if prepared.new_segment is not None and ring.first_seqs[prepared.new_segment] is not None:
            reuses.append(prepared.new_segment)
        ring_storage.write_commit(storage, prepared)
        ring.apply(prepared)
        committed.update((r.seq, r.hash) for r in prepared.results)
    return ring


STEPS = {512: 60, 4096: 30}
SEGMENTS = {512: 8192, 4096: 16384}


def total_ops(sector):
    storage = FaultyStorage(fresh_image(segment_size=SEGMENTS[sector], segment_count=4, sector_size=sector),
                            sector=sector)
    reuses = []
    workload(storage, {}, STEPS[sector], reuses)
    return storage.ops, reuses


def check_after_cut(image, committed, sector, label):
    after = FaultyStorage(image, sector=sector)
    ring = ring_storage.open_ring(after)                      # never JournalDamaged for a power cut
    quarantined = b"".join(data for _, data in after.quarantined)
    found = dict(read_all(after, ring))
    oldest = min((s for s in ring.first_seqs if s is not None), default=0)
    assert sorted(found) == list(range(oldest, ring.next_seq)), "%s: journal not readable from its oldest" % label
    for seq, rhash in committed.items():
        if seq >= oldest:
            assert found.get(seq) == rhash, "%s: committed record %d lost" % (label, seq)
    assert max(committed, default=-1) < ring.next_seq
    clock = Clock(1_864_115_200_000, b"\x02" * 8, 0)
    more = ring_storage.commit(after, ring, [(record.TYPE_BOOT, ring_storage.boot_payload(ring, "test")),
                                       (record.TYPE_TRANSACTION, {"n": -1})], clock, SIGNER)
    report = verify_journal(after.image(), [public_key()], all_signatures=True)
    assert set(report.kinds()) <= ALLOWED, "%s: verifier found %s" % (label, report.findings)
    if "RecoveryCut" in report.kinds():
        assert quarantined, "%s: a cut with nothing kept" % label
    # The walk an index rebuild makes, through the agent's own reader.
    journal = JournalFile(after, ring.geo, ring, SIGNER, None)
    walked = [rec.seq for rec in journal.records()]
    oldest = min(s for s in ring.first_seqs if s is not None)
    assert walked == list(range(oldest, ring.next_seq)) and walked[-1] >= more[-1].seq
    return ring


@pytest.mark.parametrize("sector", [512, 4096])
def test_the_workload_reuses_segments(sector):
    ops, reuses = total_ops(sector)
    assert len(reuses) >= 3, "the sweep must wrap the ring: segments reused %r" % reuses
    assert ops > 80


@pytest.mark.parametrize("sector", [512, 4096])
@pytest.mark.parametrize("mode", ["drop", "tear", "reorder"])
def test_cut_after_every_write_and_sync(mode, sector):
    ops, _ = total_ops(sector)
    seeds = REORDER_SEEDS if mode == "reorder" else 1
    image = fresh_image(segment_size=SEGMENTS[sector], segment_count=4, sector_size=sector)
    cuts = 0
    for k in range(1, ops + 1):
        for seed in range(seeds):
            storage = FaultyStorage(image, cut_after=k, mode=mode, seed=k * 1000 + seed, sector=sector)
            committed = {}
            with pytest.raises(PowerCut):
                workload(storage, committed, STEPS[sector], [])
            check_after_cut(storage.image(), committed, sector, "cut %d %s seed %d" % (k, mode, seed))
            cuts += 1
    assert cuts == ops * seeds


def test_cut_reports_what_it_cut_and_keeps_it():
    """A torn tail is set aside, then zeroed; the boot record counts it."""
    for k in range(5, 60):
        storage = FaultyStorage(fresh_image(segment_size=8192, segment_count=4), cut_after=k, mode="tear", seed=k)
        with pytest.raises(PowerCut):
            workload(storage, {}, 60, [])
        image = storage.image()
        after = FaultyStorage(image)
        ring = ring_storage.open_ring(after)
        boot = ring_storage.boot_payload(ring, "test")
        assert boot["reason"] == "open"
        if boot["cut_bytes"]:
            (offset, kept), = after.quarantined
            assert offset == boot["cut_offset"] and len(kept) == boot["cut_bytes"]
            assert image[offset:offset + len(kept)] == kept
            assert record.sha256(kept) == boot["cut_sha256"]
            assert boot["cut_records"] == sum(1 for _ in _valid(kept))
            return
    pytest.fail("no cut in the first 60 operations")


def _valid(buf):
    from daozhang.agent.core.journal import recovery
    return recovery.valid_frames(buf, 0, len(buf))
