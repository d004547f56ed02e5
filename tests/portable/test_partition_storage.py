"""firmware/partition_storage.py on a fake NOR partition, both interpreters:
appends only program (no erase), and recovery's zeroing of a torn tail
(which must set bits inside a block holding committed records) survives a
power cut at every block operation of its one-block rewrite, with the torn
bytes kept in the board's quarantine file (firmware/quarantine.py) first."""

import gc

from daozhang.agent.core.errors import StorageError
from daozhang.agent.core.journal import layout, ring_storage
from daozhang.firmware.partition_storage import PartitionStorage, format_partition
from daozhang.firmware.quarantine import QuarantineFile, entry

from portable import kit
from portable.fake_partition import FakePartition, PowerCut

GEO = layout.Geometry(8192, 4, kit.JOURNAL_ID, "mcu-pos-2", kit.CREATED_MS)
BLOCKS = GEO.file_size // 4096 + 2


def _journal(keep=None):
    part = FakePartition(BLOCKS)
    storage = format_partition(part, GEO.encode(), keep)
    return part, storage, ring_storage.open_ring(storage)


def _torn(keep):
    """A journal of five commits and half of a sixth (a power cut): (part, committed seqs, torn bytes)."""
    part, storage, ring = _journal(keep)
    clock = kit.StepClock()
    for n in range(5):
        ring_storage.commit(storage, ring, [(1, {"n": n, "memo": "m" * 30})], clock.now(), None)
    committed = [r.seq for r in kit.records(storage, ring)]
    prepared = ring.prepare([(1, {"n": 99, "memo": "t" * 300})], clock.now(), None)
    offset, data = prepared.writes[0]
    storage.pwrite(offset, data[:len(data) // 2])
    return part, committed, (offset, data[:len(data) // 2].rstrip(b"\0"))


def test_appends_into_a_segment_never_erase():
    part, storage, ring = _journal()
    clock = kit.StepClock()
    ring_storage.commit(storage, ring, [(1, {"n": 0})], clock.now(), None)     # starts the segment: erases
    erases = storage.erases
    for n in range(1, 10):
        ring_storage.commit(storage, ring, [(1, {"n": n})], clock.now(), None)
    assert storage.erases == erases
    reopened = ring_storage.open_ring(PartitionStorage(part))
    assert [r.seq for r in kit.records(storage, reopened)][-1] == ring.next_seq - 1


def test_fake_flash_refuses_to_set_bits_without_erase():
    part = FakePartition(3)
    part.writeblocks(0, b"\x0f", 0)
    kit.raises(OSError, part.writeblocks, 0, b"\xf0", 0)


def test_torn_tail_cut_survives_power_cut_during_its_rewrite():
    cut = 1
    while True:
        gc.collect()
        keep = QuarantineFile(kit.scratch_path("cut.quarantine"))
        part, committed, torn = _torn(keep)
        part.cut_after = part.ops + cut                       # and power fails again during recovery
        try:
            ring_storage.open_ring(PartitionStorage(part, keep))
        except PowerCut:
            part.revive()
            reopened = PartitionStorage(part, keep)
            ring2 = ring_storage.open_ring(reopened)
            assert [r.seq for r in kit.records(reopened, ring2)] == committed, cut
            assert ring2.next_seq == committed[-1] + 1
            # kept before any zeroing; kept again by each recovery that found it still there
            assert [(o, d, ok) for o, d, ok in keep.entries()][0] == (torn[0], torn[1], True), cut
            cut += 1
            continue
        break
    assert cut > 3          # the rewrite's erase/program steps were each cut once
    assert keep.entries() == [(torn[0], torn[1], True)]


def test_recovery_without_a_quarantine_refuses_and_changes_nothing():
    part, committed, torn = _torn(None)
    before = part.image()
    kit.raises(StorageError, ring_storage.open_ring, PartitionStorage(part))
    assert part.image() == before            # the torn tail is still there for a recovery that can keep it


def test_full_quarantine_refuses_and_changes_nothing():
    path = kit.scratch_path("full.quarantine")
    part, committed, torn = _torn(None)
    before = part.image()
    keep = QuarantineFile(path, limit=len(entry(torn[0], torn[1])) - 1)
    kit.raises(StorageError, ring_storage.open_ring, PartitionStorage(part, keep))
    assert part.image() == before
    assert keep.entries() == []


def test_torn_quarantine_append_is_dropped_before_the_next_entry():
    path = kit.scratch_path("torn.quarantine")
    with open(path, "wb") as f:
        f.write(entry(100, b"kept earlier") + entry(200, b"torn by a power cut")[:30])
    part, committed, torn = _torn(QuarantineFile(path))
    ring = ring_storage.open_ring(PartitionStorage(part, QuarantineFile(path)))
    assert ring.next_seq == committed[-1] + 1
    assert QuarantineFile(path).entries() == [(100, b"kept earlier", True), (torn[0], torn[1], True)]


def test_file_journal_keeps_its_cut_and_refuses_when_its_quarantine_is_full():
    from daozhang.firmware import flash_storage
    path = kit.scratch_path("j.bin")
    flash_storage.create(path, GEO.encode(), GEO.file_size)
    storage = flash_storage.FlashStorage(path)
    ring = ring_storage.open_ring(storage)
    clock = kit.StepClock()
    for n in range(3):
        ring_storage.commit(storage, ring, [(1, {"n": n})], clock.now(), None)
    offset, data = ring.prepare([(1, {"n": 9, "memo": "t" * 300})], clock.now(), None).writes[0]
    storage.pwrite(offset, data[:len(data) // 2])
    storage.close()
    torn = data[:len(data) // 2].rstrip(b"\0")
    with open(path, "rb") as f:
        before = f.read()
    small = flash_storage.FlashStorage(path, quarantine_limit=len(entry(offset, torn)) - 1)
    kit.raises(StorageError, ring_storage.open_ring, small)          # full: refused, nothing changed
    small.close()
    with open(path, "rb") as f:
        assert f.read() == before
    storage = flash_storage.FlashStorage(path)
    ring = ring_storage.open_ring(storage)
    storage.close()
    assert ring.recovered["cut_bytes"] == len(torn)
    assert QuarantineFile(path + ".quarantine").entries() == [(offset, torn, True)]
