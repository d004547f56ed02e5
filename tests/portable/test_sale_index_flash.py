"""The firmware's sale index on flash (firmware/sale_index_flash.py) answers
exactly as the core's memory index, on CPython and under MicroPython.

The same invariant as tests/settlement/test_watchdog.py's property test
(which hypothesis drives on CPython over short random weeks), here over a
longer seeded history both interpreters can run: hundreds of sales (the
hash buckets double), voids, refunds, settlements of every sort, ticks for
seven weeks (the hourly prune forgets expired sales and their slots are
reused).  Then what survives a power cut: a checkpointed index reopens as
of its cursor, one cut while dirty starts empty (the journal rebuilds it).
"""

from daozhang.agent.core.business_calendar import format_rfc3339
from daozhang.agent.core.settlement.fees import contracted_fee
from daozhang.agent.core.settlement.watchdog import SettlementWatchdog
from daozhang.firmware.flash_records import MemoryFiles
from daozhang.firmware import sale_index_slots
from daozhang.firmware.sale_index_flash import H_ENT_HW, FlashSaleIndex
from portable import kit
from portable.kit import Rand

HOUR = 3600000
DAY = 24 * HOUR
START = kit.CREATED_MS + 9 * HOUR
JOURNAL_ID = b"\x22" * 16


def _txn(seq, kind, key, when, amount, original=None, mode="T1"):
    t = {"seq": seq, "kind": kind, "pos_txn_id": key, "time": format_rfc3339(when // 1000, kit.CST),
         "amount": amount, "currency": "CNY", "card_type": "debit", "auth_code": "A%05d" % seq,
         "rrn": "R%011d" % seq, "terminal_id": kit.PROFILE["terminal_id"], "settlement": mode}
    if original is not None:
        t["original_pos_txn_id"] = original
    return t


def _row(t, ref, at, settled=None, mcc=5812):
    sign = -1 if t["kind"] == "refund" else 1
    fee = 0 if sign < 0 else contracted_fee(t["amount"], "debit", kit.PROFILE["fees"], t["settlement"] == "D0")
    return {"acquirer_ref": ref, "merchant_id": kit.PROFILE["merchant_id"], "terminal_id": t["terminal_id"],
            "rrn": t["rrn"], "auth_code": t["auth_code"], "txn_time": None, "kind": t["kind"],
            "amount": sign * t["amount"], "fee": fee,
            "settled_amount": (sign * t["amount"] - fee) if settled is None else settled,
            "settled_at": at, "mcc": mcc, "region": 2900}


def history(seed=7, sales=160, days=50):
    """Events in time order, as the watchdog takes them."""
    r = Rand(seed)
    events = []
    seq = 0
    for i in range(sales):
        when = START + r.below(6 * DAY) // 1000 * 1000
        seq += 1
        t = _txn(seq, "sale", "S%d" % i, when, 100 + r.below(500000), mode=("T1", "T1", "T2", "D0")[r.below(4)])
        events.append((when, 0, ("transaction", t)))
        fate = r.below(8)
        if fate == 0:
            seq += 1
            events.append((when + 60000, 0, ("transaction", _txn(seq, "void", "V%d" % i, when + 60000,
                                                                 t["amount"], t["pos_txn_id"]))))
            continue
        if fate == 1:
            seq += 1
            events.append((when + HOUR, 0, ("transaction", _txn(seq, "refund", "F%d" % i, when + HOUR,
                                                                t["amount"] // 2, t["pos_txn_id"]))))
        if fate == 2:
            continue                                  # never settles: overdue
        at = when + HOUR + r.below(6 * DAY)
        row = _row(t, "A%d" % i, at, settled=t["amount"] - 1000 if fate == 3 else None,
                   mcc=5411 if fate == 4 else 5812)
        events.append((at, 1, ("settlement", row, at)))
        if fate == 5:
            events.append((at + HOUR, 1, ("settlement", dict(row, acquirer_ref="D%d" % i,
                                                             settled_at=at + HOUR), at + HOUR)))
    for k in range(3):
        stray = _row(_txn(10 ** 6 + k, "sale", "X%d" % k, START, 777), "U%d" % k, START + (k + 2) * DAY)
        stray["rrn"], stray["auth_code"] = "zz%d" % k, ""
        events.append((stray["settled_at"], 1, ("settlement", stray, stray["settled_at"])))
    now = START
    while now < START + days * DAY:
        events.append((now, 3, ("tick", now)))
        now += 2 * HOUR
    events.sort(key=lambda e: (e[0], e[1]))
    return [e[2] for e in events]


def _pair(files=None):
    cal = kit.calendar()
    flash = FlashSaleIndex(files or MemoryFiles(), JOURNAL_ID)
    return SettlementWatchdog(kit.PROFILE, cal), SettlementWatchdog(kit.PROFILE, cal, index=flash)


def _same(memory, flash, event):
    assert flash.handle(event) == memory.handle(event), event
    assert flash.release_cursor() == memory.release_cursor(), event


def test_flash_index_answers_as_the_memory_one():
    memory, flash = _pair()
    high = 0
    for event in history():
        _same(memory, flash, event)
        high = max(high, flash.index.count())
    assert flash.state() == memory.state()
    assert flash.summary(START + 60 * DAY) == memory.summary(START + 60 * DAY)
    assert flash.index.h[H_ENT_HW] == high               # slots of pruned sales are reused
    assert flash.index.count() == memory.index.count()


def test_a_second_wave_reuses_the_pruned_slots():
    memory, flash = _pair()
    for event in history(seed=3, sales=150, days=45):
        _same(memory, flash, event)
    hw = flash.index.h[H_ENT_HW]
    assert flash.index.count() < hw
    later = history(seed=4, sales=60, days=1)
    for event in later:
        if event[0] == "transaction":
            t = dict(event[1], pos_txn_id="W" + event[1]["pos_txn_id"])
            event = ("transaction", t)
        if event[0] != "settlement":
            _same(memory, flash, event)
    assert flash.index.h[H_ENT_HW] == hw
    assert flash.state() == memory.state()


def test_a_checkpointed_index_reopens_as_of_its_cursor():
    files = MemoryFiles()
    memory, flash = _pair(files)
    events = history(seed=11, sales=120, days=12)
    cut = len(events) // 2
    for event in events[:cut]:
        _same(memory, flash, event)
    flash.index.checkpoint(4242)
    reopened = FlashSaleIndex(files.after_cut(), JOURNAL_ID)
    assert reopened.rebuilt is None and reopened.cursor == 4242
    again = SettlementWatchdog(kit.PROFILE, kit.calendar(), index=reopened)
    again.clock_trusted, again.last_trusted_now, again.last_prune = \
        flash.clock_trusted, flash.last_trusted_now, flash.last_prune
    memory.index.overdue_seen = set()        # a start observes every overdue sale again
    assert again.state() == memory.state()
    for event in events[cut:]:
        _same(memory, again, event)
    assert again.state() == memory.state()


def test_a_cut_while_dirty_or_a_torn_header_starts_empty():
    files = MemoryFiles()
    memory, flash = _pair(files)
    for event in history(seed=5, sales=20, days=2)[:30]:
        _same(memory, flash, event)
    flash.index.checkpoint(7)
    flash.handle(("transaction", _txn(999, "sale", "LATE", START + DAY, 500)))
    after = files.after_cut()
    cut = FlashSaleIndex(after, JOURNAL_ID)              # dirty: changed since the checkpoint
    assert cut.rebuilt == "dirty" and cut.cursor is None and cut.count() == 0
    cut.checkpoint(3)
    assert FlashSaleIndex(after.after_cut(), JOURNAL_ID).cursor == 3
    torn = after.after_cut()
    head = torn.durable["bkt"]
    torn.durable["bkt"] = head[:22] + b"\x01" * 8 + head[30:]       # the cursor, half written
    assert FlashSaleIndex(torn, JOURNAL_ID).rebuilt == "torn"
    other = FlashSaleIndex(after.after_cut(), b"\x33" * 16)
    assert other.rebuilt == "stale" and other.count() == 0


def test_ack_ids_keep_the_last_ring_full_and_outlive_a_checkpoint():
    files = MemoryFiles()
    index = FlashSaleIndex(files, JOURNAL_ID)
    ring = sale_index_slots.ACK_RING
    sale_index_slots.ACK_RING = 4
    try:
        for n in range(6):
            index.put_ack(bytes([n]) * 16, bytes([n + 100]) * 32, n)
        assert [index.ack_digest(bytes([n]) * 16) for n in range(6)] == \
            [None, None] + [bytes([n + 100]) * 32 for n in range(2, 6)]
        index.checkpoint(9)
        again = FlashSaleIndex(files.after_cut(), JOURNAL_ID)
        assert again.ack_digest(b"\x05" * 16) == b"\x69" * 32 and again.ack_digest(b"\x01" * 16) is None
    finally:
        sale_index_slots.ACK_RING = ring


class _RecordingFiles(MemoryFiles):
    """Every write, truncation and flush in order, to replay a prefix of them:
    a file system that writes through in order, cut in the middle of one."""

    def __init__(self):
        MemoryFiles.__init__(self)
        self.ops = []

    def open(self, name, fresh=False):
        f = MemoryFiles.open(self, name, fresh)
        if fresh:
            self.ops.append(("t", name, 0, b""))
        write = f.write

        def logged(b, f=f, name=name):
            self.ops.append(("w", name, f.pos, bytes(b)))
            return write(b)

        f.write = logged
        return f

    def cut_at(self, k, torn):
        """The files as the first k operations left them (the k-th half done if torn)."""
        files = {}
        for i, (op, name, pos, data) in enumerate(self.ops[:k]):
            if op == "t":
                files[name] = bytearray()
                continue
            if torn and i == k - 1:
                data = data[:len(data) // 2]
            buf = files.setdefault(name, bytearray())
            if len(buf) < pos + len(data):
                buf.extend(bytes(pos + len(data) - len(buf)))
            buf[pos:pos + len(data)] = data
        return MemoryFiles(dict((n, bytes(b)) for n, b in files.items()))


def _index_state(index):
    wd = SettlementWatchdog(kit.PROFILE, kit.calendar(), index=index)
    state = wd.state()
    del state["clock_trusted"]
    return state


def test_a_cut_after_any_write_leaves_the_checkpoint_or_a_rebuild():
    """Invariant: whichever write the power cut tears, the reopened index is
    either clean and exactly as it was at its cursor's checkpoint, or it
    starts empty for a rebuild from the journal; never a clean index that
    is wrong."""
    files = _RecordingFiles()
    memory, flash = _pair(files)
    at_checkpoint = {}
    for n, event in enumerate(history(seed=9, sales=10, days=3)):
        _same(memory, flash, event)
        if n % 8 == 7:
            flash.index.checkpoint(n)
            at_checkpoint[n] = _index_state(flash.index)
    clean = rebuilt = 0
    for k in range(1, len(files.ops) + 1):
        for torn in (False, True):
            index = FlashSaleIndex(files.cut_at(k, torn), JOURNAL_ID)
            if index.rebuilt is not None:
                assert index.count() == 0 and index.cursor is None
                rebuilt += 1
            elif index.cursor is not None:
                assert _index_state(index) == at_checkpoint[index.cursor], (k, torn, index.cursor)
                clean += 1
    assert clean > 0 and rebuilt > 0
