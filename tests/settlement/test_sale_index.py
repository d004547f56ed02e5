"""The watchdog over its two sale indexes (agent/core/settlement/sale_index.py).

The watchdog over the SQLite index (the daemon's) emits exactly what the
watchdog over the in-memory index (the core's, MicroPython's) emits, and
holds the same state, summary and release cursor: the scenario week here,
any random history in test_watchdog.py.
"""

from daozhang.agent.core.settlement.sale_index import MemorySaleIndex
from daozhang.agent.core.settlement.settlement_checks import SLIM_FIELDS
import pytest

from dztest.sale_index import watchdog_flash_pair, watchdog_pair
from dztest.settlement import build_scenario, local, make_txn, shanghai_profile, timeline


@pytest.fixture(params=["sqlite", "flash"])
def pair(request):
    """The daemon's SQLite index, and the firmware's on flash, each beside the memory one."""
    return watchdog_pair if request.param == "sqlite" else watchdog_flash_pair


def test_memory_index_field_positions_follow_slim_fields():
    assert [SLIM_FIELDS[i] for i in (MemorySaleIndex._TERMINAL, MemorySaleIndex._RRN,
                                     MemorySaleIndex._AUTH, MemorySaleIndex._AMOUNT,
                                     MemorySaleIndex._ORIGINAL)] == [
        "terminal_id", "rrn", "auth_code", "amount", "original_pos_txn_id"]


def test_the_scenario_week_over_disk(pair):
    scenario = build_scenario()
    memory, disk = pair(scenario["profile"])
    for event in timeline(scenario):
        assert disk.handle(event) == memory.handle(event)
    assert disk.state() == memory.state()
    assert disk.release_cursor() == memory.release_cursor()
    later = local(2027, 3, 1)
    assert disk.tick(later) == memory.tick(later)
    assert disk.release_cursor() is None and disk.index.count() == memory.index.count() == 0


def test_a_tick_emits_at_most_due_per_tick(pair):
    memory, disk = pair(shanghai_profile())
    memory.due_per_tick = disk.due_per_tick = 3
    for n in range(1, 8):
        t = make_txn(n)
        memory.handle(("transaction", t))
        disk.handle(("transaction", dict(t)))
    late = local(2027, 1, 6, 12)
    sizes = []
    for k in range(4):
        out = disk.tick(late + k)
        assert out == memory.tick(late + k)
        sizes.append(len([o for tag, o in out if o["kind"] == "settlement_overdue"]))
    assert sizes == [3, 3, 1, 0]


def _index(which):
    from dztest.sale_index import flash_index, sqlite_index
    return {"memory": MemorySaleIndex, "sqlite": sqlite_index, "flash": flash_index}[which]()


@pytest.mark.parametrize("which", ["memory", "sqlite", "flash"])
def test_an_entry_added_watched_is_one_added_then_watched(which):
    """add(entry, True), the watchdog's one write for a new sale, answers
    exactly as add(entry) then watch(entry) did, before and after the
    watchdog's other changes (seen, unwatched, settled)."""
    base = local(2027, 1, 4, 23)
    entries = []
    for n in range(1, 9):
        deadline = base + (n % 3) * 3600000          # ties: ordered by seq, then key
        entries.append({"txn": ("SH000001", "%012d" % n, "A%05d" % n, 1000 + n, "debit", None),
                        "pos_txn_id": "P%d" % n, "seq": n, "kind": "sale",
                        "time": deadline - 86400000, "amount": 1000 + n, "mode": "T1", "deadline": deadline, "cancelled": False,
                        "settlements": (), "first": None, "checks": ()})
    at_once, in_two = _index(which), _index(which)
    for e in entries:
        at_once.add(dict(e), True)
        in_two.add(dict(e))
        in_two.watch(dict(e))

    def answers(index):
        late = base + 3 * 3600000
        return ([index.watched_deadline(e["pos_txn_id"]) for e in entries], index.due(late, 5),
                index.due(late, 100), index.unsettled_keys(), index.release_floor(None, 0),
                index.expired(base + 3600000 + 1), index.keys())

    assert answers(at_once) == answers(in_two)
    for index in (at_once, in_two):
        index.mark_seen("P3")
        index.unwatch("P5")
        settled = index.get("P6")
        settled["first"] = {"acquirer_ref": "R6"}
        index.save(settled)
        index.unwatch("P6")
    assert answers(at_once) == answers(in_two)


def test_a_long_pass_judged_inside_sqlite_judging_answers_as_memory():
    """SqliteSaleIndex.judging() holds a pass's new rows and inserts them 32
    a statement: a pass of 90 transactions (refunds, a void before its sale,
    voids of sales earlier in the pass, a sale twice, a void's original
    settled) answers and keeps what the memory index does, and lookups in
    the pass see the rows it holds."""
    from dztest.settlement import HOUR, make_row
    memory, sqlite = watchdog_pair(shanghai_profile())
    start = local(2027, 1, 4, 9)
    first = make_txn(1, when=start)
    for w in (memory, sqlite):
        w.handle(("transaction", first))
        w.handle(("settlement", make_row(first, ref="S1"), start + HOUR))
    sales = [make_txn(n, when=start + n * 60000, mode="D0" if n % 7 == 0 else "T1")
             for n in range(2, 72)]
    txns = list(sales)
    txns.insert(10, make_txn(100, kind="void", original_pos_txn_id="P40", when=start))
    txns.insert(50, make_txn(101, kind="void", original_pos_txn_id="P3", when=start))
    txns.insert(60, make_txn(102, kind="reversal", original_pos_txn_id="P1", when=start))
    txns.insert(70, sales[20])                          # delivered again: a no-op
    txns += [make_txn(200 + k, kind="refund", original_pos_txn_id="P%d" % (k + 2),
                      amount=500, when=start + HOUR) for k in range(16)]
    with sqlite.index.judging([t["pos_txn_id"] for t in txns]):
        for t in txns:
            assert sqlite.judge_transaction(t) == memory.judge_transaction(t)
    assert sqlite.state() == memory.state()
    assert sqlite.release_cursor() == memory.release_cursor()
    late = local(2027, 1, 6, 12)
    assert sqlite.tick(late) == memory.tick(late)
    assert sqlite.summary(late) == memory.summary(late)
