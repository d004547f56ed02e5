"""The board's watchdog over its sale index on flash, both interpreters:
the index is checkpointed each tick, outlives a reset (the records after
its cursor are replayed), and one cut while dirty is rebuilt from the
journal (firmware/index_replay.py) to the same state: sales, the backend's
settlement acks, the overdue LED."""

from daozhang.agent.core import cbor
from daozhang.agent.core.journal.layout import Geometry
from daozhang.agent.core.journal.ring_storage import MemoryStorage
from daozhang.firmware.flash_records import MemoryFiles
from daozhang.firmware.micro_journal import MicroJournal
from daozhang.firmware.sale_index_flash import FlashSaleIndex
from daozhang.firmware.settlement_acks import BoardSettlements
from daozhang.firmware.terminal import Outputs, Terminal

from portable import kit
from portable.test_settlement_acks import _ack

DAY = 86400000


def _board(storage, files, clock, led=None):
    journal = MicroJournal(storage, None, clock)
    index = FlashSaleIndex(files, journal.ring.geo.journal_id)
    return Terminal(journal, kit.PROFILE, kit.calendar(), Outputs(led), index=index)


def _day(storage, files, clock):
    """Six sales, two settled by signed acks (journaled), a tick (checkpoint), two more sales."""
    t = _board(storage, files, clock)
    assert t.replayed == {"transactions": 0, "settlements": 0, "skipped": 0}
    sales = [kit.sale(n, clock.wall_ms, amount=10000 + n) for n in range(6)]
    for s in sales:
        t.take_sale(s)
    acks = BoardSettlements(t)
    items = []
    for n in (1, 2):
        msg, _ = _ack(n, sales[n], clock.wall_ms + DAY, ref="A%d" % n)
        items.append((msg, cbor.dumps(msg)))
    assert acks.apply(items)["settle_n"] == 2
    t.tick(clock.wall_ms + 4 * DAY)
    assert not t.index.dirty and t.index.cursor == t.journal.ring.next_seq - 1
    for n in (6, 7):
        t.take_sale(kit.sale(n, clock.wall_ms, amount=10000 + n))
    assert t.index.dirty
    return t


def _ack_again(terminal):
    """The first settlement ack the board journaled, as the backend would resend it."""
    for rec in kit.records(terminal.journal.storage, terminal.journal.ring):
        if rec.type == 2:
            ack = bytes(rec.payload["ack"])
            return cbor.loads(ack), ack
    raise AssertionError("no settlement ack in the journal")


def _storage():
    geo = Geometry(8192, 6, kit.JOURNAL_ID, "mcu-pos-1", kit.CREATED_MS)
    return MemoryStorage(bytearray(geo.encode() + bytes(geo.file_size - 4096)))


def test_a_cut_while_dirty_is_rebuilt_from_the_journal():
    storage, files = _storage(), MemoryFiles()
    clock = kit.StepClock(wall_ms=kit.CREATED_MS + 400 * DAY)
    before = _day(storage, files, clock)
    led = kit.Pin()
    after = _board(storage, files.after_cut(), clock, led)       # the reset: RAM gone, flash kept
    assert after.index.rebuilt == "dirty"
    assert after.replayed == {"transactions": 8, "settlements": 2, "skipped": 0}
    assert after.watchdog.state() == before.watchdog.state()
    assert after.release_floor() == before.release_floor()
    after.tick(clock.wall_ms + 5 * DAY)
    assert led.value() == 1 and len(after.alerts.firing()) == 6     # 8 sales, 2 settled
    # The replay guard came back from the journal too: the backend's resend of
    # an ack changes nothing, the same id with other bytes is refused.
    acks = BoardSettlements(after)
    head = after.journal.ring.next_seq
    again = _ack_again(before)
    assert acks.apply([again])["rejected"] == [] and after.journal.ring.next_seq == head
    forged = (again[0], again[1] + b"\x00")
    assert acks.apply([forged])["rejected"] == ["replay"]


def test_a_checkpointed_index_replays_only_what_came_after():
    storage, files = _storage(), MemoryFiles()
    clock = kit.StepClock(wall_ms=kit.CREATED_MS + 400 * DAY)
    before = _day(storage, files, clock)
    before.tick(clock.wall_ms + 4 * DAY)                   # checkpointed: the two late sales are in
    # A sale committed, then the reset before the index heard of it:
    late = kit.sale(8, clock.wall_ms, amount=10008)
    seq = before.journal.append(1, late).seq
    after = _board(storage, files.after_cut(), clock)
    assert after.index.rebuilt is None
    assert after.replayed == {"transactions": 1, "settlements": 0, "skipped": 0}
    before.watchdog.handle(("transaction", dict(late, seq=seq)))
    assert after.watchdog.state() == before.watchdog.state()
