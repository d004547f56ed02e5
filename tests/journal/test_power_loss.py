"""Power-loss sweep (SPEC 3.9): cut the power after write k, for every k.

Invariant: every reopen succeeds, and every record whose commit returned is
there with the same hash; the journal keeps working after the reopen.
The workload wraps the ring (cursors released as a backend would), groups
records, and goes through a signer outage, so checkpoints of every state
and segment reuse are all cut through.
"""

import pytest

from daozhang.agent.core import driver, record
from daozhang.agent.core.ring import Clock
from dztest.faulty_storage import FaultyStorage, PowerCut
from dztest.journal_kit import fresh_image, read_all, make_signer

SIGNER = make_signer()


def workload(storage, committed, steps=40):
    """Run the scripted commits; record (seq, hash) of each committed record."""
    ring = driver.open_ring(storage)
    clock = Clock(1_764_115_200_000, b"\x01" * 8, 0)
    results = driver.commit(storage, ring, [(record.TYPE_BOOT, driver.boot_payload(ring, "test"))],
                            clock, SIGNER)
    committed.update((r.seq, r.hash) for r in results)
    for step in range(steps):
        clock.wall_ms += 1000
        clock.mono_ms += 1000
        signer = None if step in (7, 8) else SIGNER       # a signer outage
        entries = [(record.TYPE_TRANSACTION, {"n": step, "i": i, "memo": "m" * 150})
                   for i in range(1 + step % 3)]
        release = ring.next_seq if step % 6 == 5 else None
        results = driver.commit(storage, ring, entries, clock, signer, release, release)
        committed.update((r.seq, r.hash) for r in results)
    return ring


def total_ops():
    storage = FaultyStorage(fresh_image(segment_size=8192, segment_count=4))
    workload(storage, {})
    return storage.ops


@pytest.mark.parametrize("mode", ["drop", "tear", "reorder"])
def test_cut_after_every_write(mode):
    ops = total_ops()
    assert ops > 80
    for k in range(1, ops + 1):
        storage = FaultyStorage(fresh_image(segment_size=8192, segment_count=4),
                                cut_after=k, mode=mode, seed=k)
        committed = {}
        with pytest.raises(PowerCut):
            workload(storage, committed)
        after = FaultyStorage(storage.image())
        ring = driver.open_ring(after)              # must not raise
        found = dict(read_all(after, ring))
        for seq, rhash in committed.items():
            if seq >= ring_oldest(ring):
                assert found.get(seq) == rhash, "cut %d (%s): committed record %d lost" % (k, mode, seq)
        assert max(committed, default=-1) < ring.next_seq
        # The journal keeps working: a boot record and a sale commit and read back.
        clock = Clock(1_864_115_200_000, b"\x02" * 8, 0)
        boot = driver.boot_payload(ring, "test")
        more = driver.commit(after, ring, [(record.TYPE_BOOT, boot), (record.TYPE_TRANSACTION, {"n": -1})],
                             clock, SIGNER)
        reopened = driver.open_ring(FaultyStorage(after.image()))
        assert dict(read_all(after, reopened))[more[-1].seq] == more[-1].hash


def ring_oldest(ring):
    return min((s for s in ring.first_seqs if s is not None), default=0)


def test_cut_reports_what_it_cut():
    """A torn tail is zeroed and the boot record says how much was cut."""
    storage = FaultyStorage(fresh_image(segment_size=8192, segment_count=4), cut_after=7, mode="tear", seed=3)
    with pytest.raises(PowerCut):
        workload(storage, {})
    image = storage.image()
    after = FaultyStorage(image)
    ring = driver.open_ring(after)
    boot = driver.boot_payload(ring, "test")
    assert boot["reason"] == "open"
    if image != after.image():          # recovery had something to zero
        assert boot["cut_bytes"] > 0 or boot["voided_segments"]
    seg = ring.head_index
    base = ring.geo.segment_offset(seg)
    tail = ring.write_pos
    assert not any(after.image()[tail:base + ring.geo.segment_size])
