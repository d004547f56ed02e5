"""The alert machine's records on the board's flash
(firmware/alert_store_flash.py), on CPython and under MicroPython.

The invariant of tests/settlement/test_alert_index.py's property test
(hypothesis, CPython only): a machine on FlashAlertStore emits exactly the
actions of one on MemoryAlertStore and holds the same records.  Here over a
seeded outage both interpreters run: overdue sales sharing their deadlines
(the group's repeat carried by the smallest key), escalation, a clock
distrusted and trusted again (inhibition), settlements resolving sales,
pending alerts withdrawn (their slots freed and reused), findings expiring,
the hash map doubling from one bucket.  Then the edges: the largest record
the machine makes fits a slot and a bigger one is refused with nothing
changed, a full file system raises StorageError, and a board that resets
rebuilds its alerts from the journal and journals none of them twice.
"""

from daozhang.agent.core.errors import LocalError, StorageError
from daozhang.agent.core.journal.layout import Geometry
from daozhang.agent.core.journal.ring_storage import MemoryStorage
from daozhang.agent.core.settlement.alerts import KINDS, AlertMachine
from daozhang.firmware.alert_store_flash import BODY_MAX, FlashAlertStore, _encode
from daozhang.firmware.flash_records import MemoryFiles
from daozhang.firmware.micro_journal import MicroJournal
from daozhang.firmware.sale_index_flash import FlashSaleIndex
from daozhang.firmware.terminal import Outputs, Terminal
from portable import kit
from portable.kit import Rand

MINUTE = 60000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
T0 = kit.CREATED_MS + 400 * DAY
DEADLINES = [T0 - 3 * DAY, T0 - 2 * DAY, T0 - DAY, T0 + DAY]
STEPS = [0, 1, MINUTE, MINUTE, HOUR, 4 * HOUR, DAY]


def _op(r, sales):
    """One event of the outage, as an observation or ("tick",)."""
    pick = r.below(20)
    if pick < 7:
        n = r.below(sales)
        since = DEADLINES[r.below(len(DEADLINES))]
        return {"kind": "settlement_overdue", "key": "MCU-%d" % n, "active": True, "since": since,
                "escalate_at": since + DAY, "amount": 1000 + n,
                "detail": {"pos_txn_id": "MCU-%d" % n, "deadline": since}}
    if pick < 9:
        return {"kind": "settlement_overdue", "key": "MCU-%d" % r.below(sales), "active": False}
    if pick < 10:
        return {"kind": "clock_untrusted", "key": "clock", "active": r.below(3) == 0}
    if pick < 15:       # pending 10 minutes: a flap is withdrawn (its slot freed)
        return {"kind": "sync_backlog", "key": "B%d" % r.below(6), "active": r.below(2) == 0,
                "flap": r.below(2) == 0}
    if pick < 16:
        return {"kind": "settlement_short", "key": "MCU-%d" % r.below(sales), "active": True,
                "amount": 10 + r.below(90)}
    return ("tick",)


def _apply(machine, op, now):
    if op == ("tick",):
        return machine.tick(now)
    obs = dict(op)
    obs["at"] = now
    acts = machine.observe(obs)
    if obs.pop("flap", False):
        obs["active"] = not obs["active"]
        acts += machine.observe(obs)
    return acts


def test_an_outage_on_flash_answers_as_in_ram():
    r = Rand(11)
    flash = AlertMachine(store=FlashAlertStore(MemoryFiles(), log2=0))
    ram = AlertMachine()
    now = T0
    withdrawn = 0
    for i in range(400):
        now += STEPS[r.below(len(STEPS))]
        op = _op(r, 90)
        acts = _apply(flash, op, now)
        assert acts == _apply(ram, op, now), (i, op)
        withdrawn += len([a for a in acts if a["action"] == "withdrawn"])
        for kind in ("settlement_overdue", "settlement_short"):
            assert flash.alerts.oldest_firing(kind) == ram.alerts.oldest_firing(kind)
            assert flash.alerts.latest_notified(kind) == ram.alerts.latest_notified(kind)
        if i % 40 == 0:
            assert flash.state() == ram.state()
    assert flash.state() == ram.state()
    assert flash.status_summary(now) == ram.status_summary(now)
    store = flash.alerts
    assert len(store) == len(ram.alerts) > 60
    assert withdrawn > 10 and store.hw < len(store) + withdrawn    # freed slots were reused
    assert store.log2 >= 5                                          # the map doubled from one bucket


def _largest(kind):
    """The biggest record the machine makes for `kind`: 64-character key and
    acquirer ref (SPEC 5.2, 7.8 limits), every time, amount and count at
    the top of its range."""
    big = 2 ** 62
    key = "K" * 64
    return {"kind": kind, "key": key, "active": True, "at": big, "since": big, "escalate_at": big,
            "amount": -big, "currency": "HKD",
            "detail": {"acquirer_ref": "R" * 64, "pos_txn_id": key, "mcc": 99999, "region": 99999,
                       "deadline": big, "seq": big}}


def test_the_largest_records_fit_and_a_bigger_one_is_refused():
    flash = AlertMachine(store=FlashAlertStore(MemoryFiles()))
    ram = AlertMachine()
    for kind in sorted(KINDS):
        obs = _largest(kind)
        assert flash.observe(obs) == ram.observe(obs)
        for rec in ram.alerts.values():
            a, b = _encode((rec["kind"], rec["key"]), rec)
            assert len(a) + len(b) <= BODY_MAX, (kind, len(a) + len(b))
    assert flash.state() == ram.state()
    before = (flash.state(), flash.status_summary())
    obs = _largest("settlement_short")       # (overdue is held: the clock is untrusted)
    obs["key"] = "K" * 63 + "2"
    obs["detail"]["reason"] = "x" * BODY_MAX
    err = kit.raises(LocalError, flash.observe, obs)
    assert "bytes" in str(err) and str(BODY_MAX) in str(err), str(err)
    assert (flash.state(), flash.status_summary()) == before       # nothing changed


class _Capped:
    """A file of FullFiles: writing past the file system's room raises
    OSError(ENOSPC), as littlefs does."""

    def __init__(self, f, owner):
        self.f, self.owner = f, owner

    def seek(self, offset, whence=0):
        return self.f.seek(offset, whence)

    def read(self, n):
        return self.f.read(n)

    def write(self, b):
        grow = max(0, self.f.pos + len(b) - len(self.f.data))
        if self.owner.used + grow > self.owner.room:
            raise OSError(28)
        self.owner.used += grow
        return self.f.write(b)

    def flush(self):
        self.f.flush()

    def close(self):
        self.f.close()


class FullFiles(MemoryFiles):
    def __init__(self, room):
        MemoryFiles.__init__(self)
        self.room, self.used = room, 0

    def open(self, name, fresh=False):
        return _Capped(MemoryFiles.open(self, name, fresh), self)


def test_a_full_file_system_raises_storage_error():
    flash = AlertMachine(store=FlashAlertStore(FullFiles(40 * 1024)))
    n = 0
    err = None
    while err is None and n < 1000:
        try:
            flash.observe({"kind": "settlement_overdue", "key": "MCU-%d" % n, "active": True, "at": T0,
                           "since": T0 - DAY, "escalate_at": T0, "amount": 100})
            n += 1
        except StorageError as exc:
            err = exc
    assert err is not None and "flash" in str(err), n
    assert 40 < n < 100                        # about 512 B a slot, plus the map and heaps
    for i in range(n):                         # every alert taken before it is there
        assert flash.alerts.get(("settlement_overdue", "MCU-%d" % i))["state"] == "firing"


def _board(storage, files, alert_files, clock, led):
    journal = MicroJournal(storage, None, clock)
    return Terminal(journal, kit.PROFILE, kit.calendar(), Outputs(led),
                    index=FlashSaleIndex(files, journal.ring.geo.journal_id), alert_files=alert_files)


def test_a_reset_rebuilds_the_alerts_from_the_journal_and_journals_nothing_twice():
    geo = Geometry(8192, 8, kit.JOURNAL_ID, "mcu-pos-1", kit.CREATED_MS)
    storage = MemoryStorage(bytearray(geo.encode() + bytes(geo.file_size - 4096)))
    files, alert_files = MemoryFiles(), MemoryFiles()
    clock = kit.StepClock(wall_ms=T0)
    led = kit.Pin()
    before = _board(storage, files, alert_files, clock, led)
    assert isinstance(before.alerts.alerts, FlashAlertStore)
    for n in range(12):
        before.take_sale(kit.sale(n, clock.wall_ms, amount=1000 + n))
    before.tick(clock.wall_ms + 5 * DAY)
    assert led.value() == 1 and len(before.alerts.firing()) == 12
    assert len(alert_files.live["rec"].data) > 11 * 512
    after = _board(storage, files.after_cut(), alert_files, clock, kit.Pin())    # the reset
    # Rebuilt from the journal's alert records before any tick: the same
    # records (firing, escalated, notified when they were), nothing skipped.
    assert after.restored == {"alerts": 36, "skipped": 0}
    assert after.alerts.state() == before.alerts.state()
    seq = after.journal.ring.next_seq
    for k in range(3):
        assert after.tick(clock.wall_ms + 5 * DAY + 1000 * (k + 1)) == []
    # The ticks re-observe every overdue sale (the sale index was cut): a
    # no-op for an alert already firing, so nothing is journaled twice.
    assert after.journal.ring.next_seq == seq
    assert after.alerts.state() == before.alerts.state()
    # Without a flash directory the machine keeps its records in RAM, as before.
    ram = Terminal(MicroJournal(MemoryStorage(bytearray(geo.encode() + bytes(geo.file_size - 4096))), None,
                                clock), kit.PROFILE, kit.calendar())
    assert isinstance(ram.alerts.alerts, dict)
