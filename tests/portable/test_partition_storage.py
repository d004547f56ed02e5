"""firmware/partition_storage.py on a fake NOR partition, both interpreters:
appends only program (no erase), and recovery's zeroing of a torn tail
(which must set bits inside a block holding committed records) survives a
power cut at every block operation of its one-block rewrite."""

import gc

from daozhang.agent.core import driver, layout
from daozhang.firmware.partition_storage import PartitionStorage, format_partition

from portable import kit
from portable.fake_partition import FakePartition, PowerCut

GEO = layout.Geometry(8192, 4, kit.JOURNAL_ID, "mcu-pos-2", kit.CREATED_MS)
BLOCKS = GEO.file_size // 4096 + 2


def _journal():
    part = FakePartition(BLOCKS)
    storage = format_partition(part, GEO.encode())
    return part, storage, driver.open_ring(storage)


def test_appends_into_a_segment_never_erase():
    part, storage, ring = _journal()
    clock = kit.StepClock()
    driver.commit(storage, ring, [(1, {"n": 0})], clock.now(), None)     # starts the segment: erases
    erases = storage.erases
    for n in range(1, 10):
        driver.commit(storage, ring, [(1, {"n": n})], clock.now(), None)
    assert storage.erases == erases
    assert [r.seq for r in kit.records(storage, driver.open_ring(PartitionStorage(part)))][-1] == ring.next_seq - 1


def test_fake_flash_refuses_to_set_bits_without_erase():
    part = FakePartition(3)
    part.writeblocks(0, b"\x0f", 0)
    kit.raises(OSError, part.writeblocks, 0, b"\xf0", 0)


def test_torn_tail_cut_survives_power_cut_during_its_rewrite():
    cut = 1
    while True:
        gc.collect()
        part, storage, ring = _journal()
        clock = kit.StepClock()
        for n in range(5):
            driver.commit(storage, ring, [(1, {"n": n, "memo": "m" * 30})], clock.now(), None)
        committed = [r.seq for r in kit.records(storage, ring)]
        prepared = ring.prepare([(1, {"n": 99, "memo": "t" * 300})], clock.now(), None)
        offset, data = prepared.writes[0]
        storage.pwrite(offset, data[:len(data) // 2])        # the commit was torn by a power cut
        part.cut_after = part.ops + cut                       # and power fails again during recovery
        try:
            driver.open_ring(PartitionStorage(part))
        except PowerCut:
            part.revive()
            reopened = PartitionStorage(part)
            ring2 = driver.open_ring(reopened)
            assert [r.seq for r in kit.records(reopened, ring2)] == committed, cut
            assert ring2.next_seq == committed[-1] + 1
            cut += 1
            continue
        break
    assert cut > 3          # the rewrite's erase/program steps were each cut once
