"""The alert machine's index (agent/core/settlement/alert_index.py) against a
straightforward reference that walks every alert on every event (the
machine as it was before the index): on random histories both emit exactly
the same actions in the same order, hold the same records, and show the
same counts and groups."""

from hypothesis import given, settings, strategies as st

from daozhang.agent.alert_store_sqlite import SqliteAlertStore
from daozhang.agent.core.settlement.alert_store import MemoryAlertStore
from daozhang.agent.core.settlement.alerts import (EVENTS, FIELDS, INHIBIT, SEVERITY_RANK, AlertMachine,
                                                   IllegalTransition)
from daozhang.firmware.alert_store_flash import F_NEXT, NOTIFIED, SINCE, FlashAlertStore
from daozhang.firmware.flash_records import MemoryFiles
from dztest.sale_index import sqlite_index

T0 = 1_800_000_000_000
MINUTE = 60000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


class ReferenceMachine(AlertMachine):
    """Inhibition recomputed from every alert, every alert visited on tick,
    groups walked: the machine's transitions (handle, _advance) without its
    index's answers."""

    def inhibited_kinds(self):
        held = set()
        for (kind, _), rec in self.alerts.items():
            if kind in INHIBIT and rec["state"] in ("pending", "firing"):
                held.update(INHIBIT[kind])
        return held

    def _held(self, kind):
        return kind in self.inhibited_kinds()

    def tick(self, now):
        actions = []
        for ident in sorted(self.alerts):     # every alert, due or not
            actions.extend(self._advance(ident, now, True))
        # Counted kinds: one repeat per group, on its oldest firing alert.
        for kind in sorted({k for (k, _) in self.alerts}):
            firing = [r for (k, _), r in self.alerts.items() if k == kind and r["state"] == "firing"]
            if not self.kinds[kind]["count"] or not firing or kind in self.inhibited_kinds():
                continue
            if now >= max(r["last_notified"] for r in firing) + self.kinds[kind]["repeat"]:
                oldest = min(firing, key=lambda r: (r["since"], r["key"]))
                actions.append(self.handle(kind, oldest["key"], "repeat", now))
        return actions


def walked_summary(machine):
    """Counts and groups computed by walking every record."""
    firing = [r for r in machine.alerts.values() if r["state"] == "firing"]
    assert len(machine.alerts) == len(list(machine.alerts.values()))
    groups = {}
    for rec in firing:
        g = groups.setdefault(rec["kind"], {"count": 0, "amount": 0, "oldest": None,
                                            "critical": 0})
        g["count"] += 1
        g["amount"] += rec["amount"] or 0
        g["critical"] += rec["severity"] == "critical"
        g["oldest"] = rec["since"] if g["oldest"] is None else min(g["oldest"], rec["since"])
    pending = sum(1 for r in machine.alerts.values() if r["state"] == "pending")
    return pending, len(firing), groups


def indexed_summary(machine):
    s = machine.status_summary()
    groups = {}
    for g in s["groups"]:
        groups[g["kind"]] = {"count": g["count"], "amount": sum(g["amounts"].values()),
                             "oldest": g["oldest"],
                             "critical": machine.index.groups[g["kind"]].critical}
    return s["pending"], s["firing"], groups


KINDS = ["settlement_overdue", "clock_untrusted", "sync_backlog", "mcc_jump", "journal_full",
         "journal_near_full", "security"]
op = st.one_of(
    st.tuples(st.just("observe"), st.sampled_from(KINDS), st.sampled_from("abcd"),
              st.booleans(), st.integers(0, 2 * DAY), st.integers(0, 5000)),
    st.tuples(st.just("tick")),
    st.tuples(st.just("handle"), st.sampled_from(KINDS), st.sampled_from("abcd"),
              st.sampled_from(EVENTS)),
)
# (time step before the operation, the operation)
step = st.tuples(st.integers(0, DAY), op)


def apply(machine, op, now):
    if op[0] == "observe":
        kind, key, active, escalate_in, amount = op[1:6]
        since = now - amount if len(op) == 6 else op[6]      # op[6]: a `since` many alerts share
        return machine.observe({"kind": kind, "key": key, "active": active, "at": now,
                                "since": since, "escalate_at": now + escalate_in,
                                "amount": amount})
    if op[0] == "tick":
        return machine.tick(now)
    try:
        act = machine.handle(op[1], op[2], op[3], now)
    except IllegalTransition:
        return "illegal"
    return [act] if act else []


def check_against_reference(fast, history, ref=None, each=None):
    """`fast` and `ref` (the walking ReferenceMachine unless given) agree
    after every step; `each(fast, ref)` checks more."""
    ref = ReferenceMachine() if ref is None else ref
    now = T0
    for dt, op in history:
        now += dt
        assert apply(fast, op, now) == apply(ref, op, now)
        assert fast.state() == ref.state()
        assert fast.inhibited_kinds() == ref.inhibited_kinds()
        assert indexed_summary(fast) == walked_summary(fast)
        if each is not None:
            each(fast, ref)


@settings(max_examples=400, deadline=None)
@given(st.lists(step, max_size=80))
def test_indexed_machine_equals_the_reference(history):
    check_against_reference(AlertMachine(), history)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=60))
def test_the_daemons_on_disk_store_equals_the_reference(history):
    """The same with the records, deadlines and oldest in SQLite (the
    daemon's store), and a machine reopened on that store mid-way (a
    restart) carries on identically."""
    index = sqlite_index()
    try:
        half = len(history) // 2
        fast = AlertMachine(store=SqliteAlertStore(index.db))
        ref = ReferenceMachine()
        now = T0
        for i, (dt, op) in enumerate(history):
            if i == half:
                fast = AlertMachine(store=SqliteAlertStore(index.db))   # restart
            now += dt
            assert apply(fast, op, now) == apply(ref, op, now)
            assert fast.state() == ref.state()
            assert indexed_summary(fast) == walked_summary(fast)
    finally:
        index.close()


# The board's outage: many keys (slots freed and reused, the hash map
# doubling from one bucket), overdue sales sharing their deadline as `since`
# (the group's oldest is then the smallest key), steps that land exactly on
# deadlines.
KEYS = ["S%02d" % i for i in range(24)]
shared_op = st.one_of(
    st.tuples(st.just("observe"), st.sampled_from(KINDS + ["settlement_overdue"] * 5), st.sampled_from(KEYS),
              st.booleans(), st.integers(0, 2 * DAY), st.sampled_from([0, 100, 5000]),
              st.sampled_from([T0 - DAY, T0 - HOUR, T0])),
    st.tuples(st.just("tick")),
    st.tuples(st.just("handle"), st.sampled_from(KINDS), st.sampled_from(KEYS), st.sampled_from(EVENTS)),
)
shared_step = st.tuples(st.sampled_from([0, 1, MINUTE, HOUR, 4 * HOUR, DAY]) | st.integers(0, DAY), shared_op)


def flash_store_holds_its_orders(store):
    """Each kind's heaps hold exactly its firing alerts (no stale entry),
    every live slot is reachable through the map, which has at least half
    as many buckets as alerts, and the free list and the live slots
    partition the file (freed slots are reused)."""
    firing = {}
    for (kind, _), rec in store.items():
        firing[kind] = firing.get(kind, 0) + (rec["state"] == "firing")
    for kind, heaps in store.heaps.items():
        assert heaps.sizes[SINCE] == heaps.sizes[NOTIFIED] == firing.get(kind, 0)
    idents = list(store)
    assert len(idents) == len(store) == len(set(idents))
    for ident in idents:
        assert store._find(ident)[0] is not None
    free, link = 0, store.free
    while link:
        free += 1
        link = store._head(link - 1)[F_NEXT]
    assert free + len(store) == store.hw
    assert len(store) <= 2 << store.log2           # the map doubled: chains stay short


@settings(max_examples=250, deadline=None)
@given(st.lists(st.one_of(step, shared_step, shared_step), min_size=20, max_size=150), st.integers(0, 2))
def test_the_boards_flash_store_equals_the_memory_store(history, log2):
    """A machine on the firmware's FlashAlertStore (over MemoryFiles, its
    map starting at 1 to 4 buckets) emits exactly the actions of one on
    MemoryAlertStore, holds the same records, and the store answers
    oldest_firing (ties by key), latest_notified and has_due alike."""

    def same_answers(flash, mem):
        assert indexed_summary(flash) == indexed_summary(mem)
        for kind in KINDS:
            assert flash.alerts.oldest_firing(kind) == mem.alerts.oldest_firing(kind)
            assert flash.alerts.latest_notified(kind) == mem.alerts.latest_notified(kind)
        for ident in mem.alerts:
            assert flash.alerts.has_due(ident) == mem.alerts.has_due(ident)
        flash_store_holds_its_orders(flash.alerts)

    check_against_reference(AlertMachine(store=FlashAlertStore(MemoryFiles(), log2=log2)), history,
                            ref=AlertMachine(), each=same_answers)


def test_a_tick_visits_only_due_alerts():
    """100,000 firing overdue alerts whose next deadline is hours away: a
    tick pops nothing and emits nothing."""
    m = AlertMachine()
    for i in range(100000):
        m.observe({"kind": "settlement_overdue", "key": "S%06d" % i, "active": True, "at": T0,
                   "since": T0 - DAY, "escalate_at": T0 + DAY, "amount": 100})
    assert m.status_summary()["firing"] == 100000
    assert m.index.pop_due(T0 + MINUTE) == []
    assert m.tick(T0 + MINUTE) == []
    # Four hours on, the group repeats once, on its oldest alert: not 100,000 times.
    assert [(a["action"], a["key"]) for a in m.tick(T0 + 4 * HOUR)] == [("repeated", "S000000")]
    assert m.tick(T0 + 4 * HOUR + MINUTE) == []
    assert [a["key"] for a in m.tick(T0 + 8 * HOUR)] == ["S000000"]


def test_held_alerts_cost_a_tick_nothing():
    m = AlertMachine()
    for i in range(1000):
        m.observe({"kind": "settlement_overdue", "key": "S%d" % i, "active": True, "at": T0,
                   "escalate_at": T0 + HOUR})
    m.observe({"kind": "clock_untrusted", "key": "clock", "active": True, "at": T0})
    assert m.tick(T0 + 1) == []
    heap_before = len(m.alerts.heaps["settlement_overdue"])
    assert heap_before == 1000     # one entry per alert: pending and firing left none stale
    assert m.tick(T0 + 2 * HOUR) == []
    assert len(m.alerts.heaps["settlement_overdue"]) == heap_before
    m.observe({"kind": "clock_untrusted", "key": "clock", "active": False, "at": T0 + 3 * HOUR})
    acts = m.tick(T0 + 3 * HOUR)
    assert [a["action"] for a in acts] == ["escalated"] * 1000
    assert min(SEVERITY_RANK[a["severity"]] for a in acts) == 0


def _three_stores():
    index = sqlite_index()
    return [MemoryAlertStore(), SqliteAlertStore(index.db), FlashAlertStore(MemoryFiles())], index


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["settlement_overdue", "settlement_short", "security"]),
                          st.sampled_from(KEYS), st.sampled_from([T0 - DAY, T0 - HOUR, T0, T0 + HOUR])),
                max_size=60),
       st.integers(1, 7))
def test_pop_due_with_a_limit_takes_slices_earliest_first(puts, limit):
    """A board's tick visits at most `limit` due alerts (firmware/terminal.py
    TICK_ALERTS): each store pops at most that many, kind by kind, earliest
    deadline first, the rest staying due; slice after slice they are
    exactly the alerts an unlimited pop takes at once."""
    stores, index = _three_stores()
    try:
        dues = {}
        for store in stores:
            for kind, key, due in puts:
                rec = dict.fromkeys(FIELDS)
                rec.update(kind=kind, key=key, state="pending", severity="warning", since=due,
                           pending_since=due, currency="CNY")
                store.put((kind, key), rec, due)
                dues[(kind, key)] = due             # a second put replaces the deadline
        kinds = sorted({kind for kind, _, _ in puts})
        expected = sorted(ident for ident, due in dues.items() if due <= T0)
        for store in stores:
            taken = []
            while True:
                got = store.pop_due(T0, kinds, limit)
                assert len(got) <= limit and got == sorted(got)
                if not got:
                    break
                left = [(ident, dues[ident]) for ident in expected if ident not in taken + got]
                for ident in got:
                    # Nothing left of an earlier kind, nor of its own kind with an earlier deadline.
                    assert all(kinds.index(i[0]) > kinds.index(ident[0]) or
                               (i[0] == ident[0] and d >= dues[ident]) for i, d in left)
                taken.extend(got)
            assert sorted(taken) == expected
            assert store.pop_due(T0, kinds) == []
    finally:
        index.close()


def test_a_limited_tick_emits_the_same_actions_a_slice_at_a_time():
    """1,000 firing alerts escalating at the same moment (one deadline for
    a day's sales): ticks limited to 32 alerts emit 32 escalations each,
    the same 1,000 in all as one unlimited tick."""
    machines = [AlertMachine(), AlertMachine()]
    for m in machines:
        for i in range(1000):
            m.observe({"kind": "settlement_overdue", "key": "S%04d" % i, "active": True, "at": T0,
                       "since": T0 - DAY, "escalate_at": T0 + HOUR, "amount": 100})
    whole = machines[0].tick(T0 + HOUR)
    sliced, sizes = [], []
    for k in range(40):
        acts = machines[1].tick(T0 + HOUR + k * 1000, 32)
        sizes.append(len(acts))
        sliced.extend(acts)
    assert sizes[:31] == [32] * 31 and sizes[31] == 1000 - 31 * 32 and not any(sizes[32:])
    assert sorted(a["key"] for a in sliced) == sorted(a["key"] for a in whole)
    assert {a["action"] for a in sliced} == {"escalated"}
    assert machines[1].status_summary()["critical"] == machines[0].status_summary()["critical"] == 1000
