"""The watchdog's event rules, one at a time."""

import pytest

from daozhang.agent.core.errors import LocalError
from dztest.settlement import HOUR, SimTerminal, local, shanghai_profile
from dztest.settlement import make_row as row, make_txn as txn

MONDAY = local(2027, 1, 4, 10)
AFTER_DEADLINE = local(2027, 1, 5, 23, 10)


def kinds(actions):
    return [(a["kind"], a["key"], a["action"]) for a in actions]


def test_void_clears_an_overdue_sale():
    term = SimTerminal(shanghai_profile())
    term.feed(("transaction", txn(1)))
    assert ("settlement_overdue", "P1", "firing") in kinds(term.feed(("tick", AFTER_DEADLINE)))
    void = txn(2, kind="void", original_pos_txn_id="P1", when=AFTER_DEADLINE + HOUR)
    assert kinds(term.feed(("transaction", void))) == [("settlement_overdue", "P1", "resolved")]
    assert term.watchdog.summary(AFTER_DEADLINE + 2 * HOUR)["counts"]["not_arrived"] == 0


def test_refunds_do_not_raise_overdue_but_count_as_not_arrived():
    term = SimTerminal(shanghai_profile())
    term.feed(("transaction", txn(1, kind="refund", original_pos_txn_id="P0")))
    assert term.feed(("tick", AFTER_DEADLINE)) == []
    assert term.watchdog.summary(AFTER_DEADLINE)["counts"]["not_arrived"] == 1


def test_redelivered_ack_changes_nothing():
    term = SimTerminal(shanghai_profile())
    t = txn(1)
    term.feed(("transaction", t))
    r = row(t, mcc=5411)
    first = term.feed(("settlement", r, MONDAY + HOUR))
    assert kinds(first) == [("mcc_jump", "P1", "pending"), ("mcc_jump", "P1", "firing")]
    before = term.watchdog.state()
    assert term.watchdog.handle(("settlement", r, MONDAY + 2 * HOUR)) == []
    assert term.watchdog.state() == before


def test_check_results_go_out_with_each_settlement():
    term = SimTerminal(shanghai_profile())
    t = txn(1)
    term.feed(("transaction", t))
    outputs = term.watchdog.handle(("settlement", row(t, fee=700), MONDAY + HOUR))
    checks = [o for tag, o in outputs if tag == "check"]
    assert [c["checks"] for c in checks] == [["over_fee"]]
    assert checks[0]["fee_excess"] == 150 and checks[0]["contracted_fee"] == 550


def test_release_waits_for_a_trusted_clock():
    term = SimTerminal(shanghai_profile())
    term.feed(("transaction", txn(1)))
    term.feed(("transaction", txn(2, when=MONDAY + 60000)))
    t3 = txn(3, when=MONDAY + 120000)
    term.feed(("transaction", t3))
    term.feed(("settlement", row(t3), MONDAY + HOUR))
    assert term.watchdog.release_cursor() == 1
    later = AFTER_DEADLINE + 40 * 24 * HOUR
    term.feed(("clock", False, later))
    term.feed(("tick", later))
    assert term.watchdog.release_cursor() == 1  # an untrusted clock expires nothing
    term.feed(("clock", True, later))
    assert term.watchdog.release_cursor() is None


def test_unknown_event_is_a_local_error():
    term = SimTerminal(shanghai_profile())
    with pytest.raises(LocalError, match="unknown watchdog event"):
        term.watchdog.handle(("coffee", 1))


def test_prune_forgets_expired_transactions_and_stays_consistent():
    term = SimTerminal(shanghai_profile())
    old = txn(1)
    term.feed(("transaction", old))
    term.feed(("settlement", row(old), MONDAY + HOUR))
    term.feed(("settlement", row(old, ref="U9", rrn="nope", auth_code=""), MONDAY + HOUR))
    fresh_time = MONDAY + 40 * 24 * HOUR  # past P1 deadline + 35 days
    fresh = txn(2, when=fresh_time)
    term.feed(("transaction", fresh))
    term.feed(("tick", fresh_time + HOUR))
    ledger = term.watchdog.ledger
    assert list(ledger.entries) == ["P2"] and ledger.order == ["P2"]
    assert ledger.unknown == [] and "X1" not in ledger.results
    assert all(e["pos_txn_id"] == "P2" for v in ledger.index.by_rrn.values() for e in v)
    # the fresh one still matches and is checked as usual
    out = term.watchdog.handle(("settlement", row(fresh, ref="X2", settled_at=fresh_time + HOUR),
                                fresh_time + HOUR))
    assert [o["checks"] for tag, o in out if tag == "check"] == [[]]


# -- property: a reboot anywhere rebuilds the same state -------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

from daozhang.agent.core.settlement.settlement_checks import txn_time_ms  # noqa: E402

DAYS = 24 * HOUR


@st.composite
def histories(draw):
    """A random week: sales, voids, refunds, settlements of every sort,
    clock steps, ticks; all in time order."""
    start = local(2026, 12, 30, 9)
    events = []
    n_sales = draw(st.integers(1, 12))
    sales = []
    for i in range(n_sales):
        when = start + draw(st.integers(0, 5 * DAYS)) // 1000 * 1000
        t = txn(i + 1, when=when, amount=draw(st.integers(100, 500000)),
                mode=draw(st.sampled_from(["T1", "T1", "T2", "D0"])))
        sales.append(t)
        events.append((when, 0, ("transaction", t)))
    seq = n_sales
    for t in sales:
        fate = draw(st.sampled_from(["ok", "late", "short", "jump", "dup", "none", "void",
                                     "refund"]))
        when = txn_time_ms(t)
        if fate == "void":
            seq += 1
            v = txn(seq, kind="void", original_pos_txn_id=t["pos_txn_id"], when=when + 60000)
            events.append((when + 60000, 0, ("transaction", v)))
            continue
        if fate == "refund":
            seq += 1
            r = txn(seq, kind="refund", amount=t["amount"] // 2,
                    original_pos_txn_id=t["pos_txn_id"], when=when + HOUR)
            events.append((when + HOUR, 0, ("transaction", r)))
        if fate == "none":
            continue
        at = when + draw(st.integers(HOUR, 6 * DAYS))
        more = {}
        if fate == "short":
            more["settled"] = t["amount"] - 1000
        if fate == "jump":
            more["mcc"] = 5411
        rw = row(t, ref="A" + t["pos_txn_id"], settled_at=at, **more)
        events.append((at, 1, ("settlement", rw, at)))
        if fate == "dup":
            events.append((at + HOUR, 1, ("settlement", dict(rw, acquirer_ref="D" + t["pos_txn_id"],
                                                             settled_at=at + HOUR), at + HOUR)))
    events.append((start + 5 * DAYS, 1, ("settlement", row(txn(999), ref="U1", rrn="zz",
                                                           auth_code=""), start + 5 * DAYS)))
    if draw(st.booleans()):
        step_at = start + draw(st.integers(0, 8 * DAYS))
        events.append((step_at, 2, ("clock", False, step_at - DAYS)))
        back_at = step_at + draw(st.integers(HOUR, 2 * DAYS))
        events.append((back_at, 2, ("clock", True, back_at)))
    now = start
    while now < start + 12 * DAYS:
        events.append((now, 3, ("tick", now)))
        now += 2 * HOUR
    events.sort(key=lambda e: (e[0], e[1]))
    return [e[2] for e in events]


@settings(max_examples=40, deadline=None)
@given(histories(), st.floats(0, 1))
def test_reboot_anywhere_rebuilds_the_same_state(events, where):
    """Invariant: for any history and any reboot point, the terminal rebuilt
    from its journal has the same watchdog and alert state, and from there
    emits exactly what the uninterrupted one emits."""
    cut = int(where * len(events))
    straight = SimTerminal(shanghai_profile())
    for e in events[:cut]:
        straight.feed(e)
    rebooted = SimTerminal.rebuild(shanghai_profile(), straight.journal)
    assert rebooted.watchdog.state() == straight.watchdog.state()
    assert rebooted.machine.state() == straight.machine.state()
    for e in events[cut:]:
        assert rebooted.feed(e) == straight.feed(e)


@settings(max_examples=40, deadline=None)
@given(histories())
def test_sqlite_index_answers_exactly_as_the_memory_one(events):
    """Invariant: for any history, the watchdog over the daemon's SQLite
    sale index emits what the one over the in-memory index emits, with the
    same release cursor at every step and the same state and summary."""
    from dztest.sale_index import watchdog_pair
    memory, disk = watchdog_pair(shanghai_profile())
    for event in events:
        assert disk.handle(event) == memory.handle(event)
        assert disk.release_cursor() == memory.release_cursor()
    assert disk.state() == memory.state()
    as_of = local(2027, 1, 20)
    assert disk.summary(as_of) == memory.summary(as_of)


@settings(max_examples=40, deadline=None)
@given(histories())
def test_flash_index_answers_exactly_as_the_memory_one(events):
    """Invariant: the same for the firmware's sale index on flash
    (firmware/sale_index_flash.py), which tests/portable/test_sale_index_flash.py
    also holds to the memory index under MicroPython."""
    from dztest.sale_index import watchdog_flash_pair
    memory, flash = watchdog_flash_pair(shanghai_profile())
    for event in events:
        assert flash.handle(event) == memory.handle(event)
        assert flash.release_cursor() == memory.release_cursor()
    assert flash.state() == memory.state()
    as_of = local(2027, 1, 20)
    assert flash.summary(as_of) == memory.summary(as_of)


@st.composite
def awkward_histories(draw):
    """histories() with the transactions judge_transaction() cannot answer
    from what it just wrote: one delivered again (a no-op), a record the
    checks refuse under the key of a sale, and a void before its sale."""
    events = draw(histories())
    sales = [e[1] for e in events if e[0] == "transaction" and e[1]["kind"] == "sale"]
    for t in draw(st.lists(st.sampled_from(sales), max_size=3)):
        at = draw(st.integers(events.index(("transaction", t)) + 1, len(events)))
        events.insert(at, ("transaction", t))
    if draw(st.booleans()):
        t = draw(st.sampled_from(sales))
        at = draw(st.integers(events.index(("transaction", t)) + 1, len(events)))
        events.insert(at, ("transaction", dict(t, kind="coffee", seq=800)))
    if draw(st.booleans()):
        t = draw(st.sampled_from(sales))
        void = txn(900, kind="void", original_pos_txn_id=t["pos_txn_id"], when=txn_time_ms(t))
        events.insert(events.index(("transaction", t)), ("transaction", void))
    return events


@settings(max_examples=40, deadline=None)
@given(awkward_histories())
def test_judge_transaction_tells_the_deadline_the_index_then_answers(events):
    """Invariant: over each sale index, judge_transaction() emits what
    handle() emits over the memory one, and its deadline is what
    watched_deadline() answers right after (the daemon's "journaled after
    its deadline" test, which it no longer asks the index for a new sale)."""
    from dztest.sale_index import watchdog_flash_pair, watchdog_pair
    reference, sqlite = watchdog_pair(shanghai_profile())
    memory, flash = watchdog_flash_pair(shanghai_profile())
    for event in events:
        expected = reference.handle(event)
        for w in (memory, sqlite, flash):
            if event[0] != "transaction":
                assert w.handle(event) == expected
                continue
            outputs, deadline = w.judge_transaction(event[1])
            assert outputs == expected
            assert deadline == w.watched_deadline(event[1]["pos_txn_id"])
    for w in (memory, sqlite, flash):
        assert w.state() == reference.state()
        assert w.release_cursor() == reference.release_cursor()


@settings(max_examples=40, deadline=None)
@given(awkward_histories(), st.lists(st.integers(1, 40), min_size=1))
def test_sqlite_judging_passes_change_no_answer(events, passes):
    """Invariant: judging transactions in passes inside the SQLite index's
    judging() (the daemon's drain: its keys looked up per pass, its new rows
    held and inserted together) emits and keeps what the memory index does,
    whatever the pass holds (the same key twice, a void before its sale,
    refused records) and however long it is (past _INSERT_ROWS too)."""
    from dztest.sale_index import watchdog_pair
    memory, sqlite = watchdog_pair(shanghai_profile())
    i = 0
    while i < len(events):
        if events[i][0] != "transaction":
            assert sqlite.handle(events[i]) == memory.handle(events[i])
            i += 1
            continue
        j, n = i, passes[i % len(passes)]       # a pass: up to n transactions in a row
        while j < len(events) and j - i < n and events[j][0] == "transaction":
            j += 1
        with sqlite.index.judging([e[1]["pos_txn_id"] for e in events[i:j]]):
            for e in events[i:j]:
                assert sqlite.judge_transaction(e[1]) == memory.judge_transaction(e[1])
        i = j
    assert sqlite.state() == memory.state()
    assert sqlite.release_cursor() == memory.release_cursor()
