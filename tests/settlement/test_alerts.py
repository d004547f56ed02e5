"""The alert state machine: its table, inhibition, escalation, grouping, and
property tests (illegal transitions raise and change nothing; journaled
actions rebuild the same state)."""

import copy

import pytest
from hypothesis import given, settings, strategies as st

from daozhang.agent.core.settlement.alerts import (EVENTS, KINDS, STATES, TRANSITIONS, AlertMachine, IllegalTransition,
                                                   ReplayMismatch, format_money, transition_table_dot)

T0 = 1_800_000_000_000  # Unix ms
MINUTE = 60000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def raise_obs(kind, key, at, **more):
    obs = {"kind": kind, "key": key, "active": True, "at": at}
    obs.update(more)
    return obs


def clear_obs(kind, key, at):
    return {"kind": kind, "key": key, "active": False, "at": at}


def machine_in(state, kind="sync_backlog"):
    """A machine whose alert (kind, "k") is in `state`."""
    m = AlertMachine()
    if state == "inactive":
        return m
    m.handle(kind, "k", "raise", T0)
    if state == "pending":
        return m
    m.handle(kind, "k", "for_elapsed", T0 + 10 * MINUTE)
    if state == "firing":
        return m
    m.handle(kind, "k", "clear", T0 + 11 * MINUTE)
    assert state == "resolved"
    return m


def test_lifecycle_pending_firing_resolved():
    m = AlertMachine()
    acts = m.observe(raise_obs("sync_backlog", "backlog", T0))
    assert [a["action"] for a in acts] == ["pending"]
    assert m.tick(T0 + 10 * MINUTE - 1) == []
    assert [a["action"] for a in m.tick(T0 + 10 * MINUTE)] == ["firing"]
    acts = m.observe(clear_obs("sync_backlog", "backlog", T0 + 11 * MINUTE))
    assert [(a["action"], a["state"], a["resolved_at"]) for a in acts] == [
        ("resolved", "resolved", T0 + 11 * MINUTE)]


def test_pending_that_clears_is_withdrawn_not_resolved():
    m = AlertMachine()
    m.observe(raise_obs("sync_backlog", "backlog", T0))
    acts = m.observe(clear_obs("sync_backlog", "backlog", T0 + 5))
    assert [a["action"] for a in acts] == ["withdrawn"]
    assert m.state() == {}


def test_escalation_and_repeat():
    m = AlertMachine()
    acts = m.observe(raise_obs("settlement_overdue", "P1", T0, escalate_at=T0 + DAY,
                               amount=125000, since=T0 - 60))
    assert [(a["action"], a["severity"]) for a in acts] == [("pending", "warning"),
                                                            ("firing", "warning")]
    assert [a["action"] for a in m.tick(T0 + 4 * HOUR)] == ["repeated"]
    acts = m.tick(T0 + DAY)
    assert [(a["action"], a["severity"]) for a in acts] == [("escalated", "critical")]
    assert m.tick(T0 + DAY + MINUTE) == []
    assert [a["action"] for a in m.tick(T0 + DAY + 4 * HOUR)] == ["repeated"]


def test_findings_expire_after_their_ttl():
    m = AlertMachine()
    m.observe(raise_obs("mcc_jump", "P9", T0, amount=100))
    ttl = KINDS["mcc_jump"]["ttl"]
    assert all(a["action"] == "repeated" for a in m.tick(T0 + ttl - 1))
    assert [a["action"] for a in m.tick(T0 + ttl)] == ["expired"]
    assert m.firing() == []


def test_clock_untrusted_holds_deadline_alerts():
    m = AlertMachine()
    m.observe(raise_obs("settlement_overdue", "P1", T0, escalate_at=T0 + HOUR))
    m.observe(raise_obs("settlement_overdue", "P4", T0))
    m.observe(raise_obs("clock_untrusted", "clock", T0 + 10))
    # a new overdue is not invented, the firing one neither escalates nor repeats
    assert m.observe(raise_obs("settlement_overdue", "P2", T0 + 20)) == []
    acts = m.tick(T0 + 10 * HOUR)
    assert [a["kind"] for a in acts] == ["clock_untrusted"]  # its own repeat only
    assert m.alerts[("settlement_overdue", "P1")]["severity"] == "warning"
    # a settlement still resolves it: that needs no clock
    acts = m.observe(clear_obs("settlement_overdue", "P4", T0 + 30))
    assert [a["action"] for a in acts] == ["resolved"]
    # trusted again: the held one escalates on the next tick
    m.observe(clear_obs("clock_untrusted", "clock", T0 + 11 * HOUR))
    acts = m.tick(T0 + 11 * HOUR)
    assert [(a["kind"], a["action"]) for a in acts] == [("settlement_overdue", "escalated")]


def test_journal_full_inhibits_near_full():
    m = AlertMachine()
    m.observe(raise_obs("journal_full", "journal", T0))
    assert m.observe(raise_obs("journal_near_full", "journal", T0)) == []


def test_group_lines_and_money():
    m = AlertMachine()
    for i, amount in enumerate((50000, 70000, 5000)):
        m.observe(raise_obs("settlement_overdue", "P%d" % i, T0, amount=amount))
    m.observe(raise_obs("clock_untrusted", "clock", T0))
    m.observe(raise_obs("security", "ack", T0))
    assert m.group_lines() == ["1 rejected message", "clock not trusted: deadlines on hold",
                               "3 payments overdue, ¥1,250.00"]
    summary = m.status_summary()
    assert (summary["firing"], summary["critical"], summary["worst"]) == (5, 1, "critical")
    assert summary["display"] == m.display_line() == " | ".join(m.group_lines())
    assert AlertMachine().display_line() == "all payments in order"
    assert format_money(123456789, "CNY") == "¥1,234,567.89"
    assert format_money(-7, "USD") == "-$0.07"
    assert format_money(5, "XAF") == "XAF 0.05"


def test_transition_table_dot_draws_every_transition():
    dot = transition_table_dot()
    for (state, event), (new, action) in TRANSITIONS.items():
        if action:
            assert '%s -> %s [label="%s / %s"]' % (state, new, event, action) in dot


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("event", EVENTS)
def test_every_illegal_transition_raises_and_changes_nothing(state, event):
    m = machine_in(state)
    before = copy.deepcopy(m.state())
    if (state, event) in TRANSITIONS:
        m.handle("sync_backlog", "k", event, T0 + 12 * MINUTE)
        return
    with pytest.raises(IllegalTransition, match="not allowed in state"):
        m.handle("sync_backlog", "k", event, T0 + 12 * MINUTE)
    assert m.state() == before


def test_unknown_kind_raises():
    m = AlertMachine()
    with pytest.raises(IllegalTransition, match="unknown alert kind"):
        m.handle("coffee_low", "k", "raise", T0)
    assert m.state() == {}


def test_replay_mismatch_raises_and_changes_nothing():
    m = machine_in("firing")
    before = copy.deepcopy(m.state())
    bogus = {"type": "alert", "action": "firing", "state": "firing", "kind": "sync_backlog",
             "key": "k", "at": T0}
    with pytest.raises(ReplayMismatch):
        m.restore(bogus)
    assert m.state() == before


# -- properties ----------------------------------------------------------------

KIND_CHOICES = ["settlement_overdue", "clock_untrusted", "sync_backlog", "mcc_jump",
                "journal_full", "journal_near_full"]
ops = st.lists(st.tuples(st.sampled_from(["observe", "handle", "tick"]),
                         st.sampled_from(KIND_CHOICES), st.sampled_from(["a", "b"]),
                         st.sampled_from(EVENTS), st.booleans(), st.integers(0, 3 * DAY)),
               max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_machine_properties(operations):
    """Invariants, whatever the input sequence: (1) an event is applied by the
    table or raises IllegalTransition with state unchanged; (2) replaying the
    emitted actions rebuilds the same state; (3) while clock_untrusted is
    pending or firing no overdue alert starts, fires, escalates or repeats."""
    m = AlertMachine()
    emitted = []
    now = T0
    for op, kind, key, event, active, step in operations:
        now += step
        untrusted = any(r["kind"] == "clock_untrusted" and r["state"] in ("pending", "firing")
                        for r in m.alerts.values())
        before = copy.deepcopy(m.state())
        if op == "observe":
            acts = m.observe({"kind": kind, "key": key, "active": active, "at": now,
                              "escalate_at": now + HOUR})
        elif op == "tick":
            acts = m.tick(now)
        else:
            try:
                act = m.handle(kind, key, event, now)
            except IllegalTransition:
                assert m.state() == before
                continue
            acts = [act] if act else []
        for a in acts:
            assert a["state"] in STATES
            if untrusted and a["kind"] == "settlement_overdue" and op != "handle":
                assert a["action"] in ("resolved", "withdrawn")
        emitted.extend(acts)
    rebuilt = AlertMachine()
    for a in emitted:
        rebuilt.restore(a)
    assert rebuilt.state() == m.state()


def test_spec_table_is_the_code_table():
    """docs/SPEC.md §7.6 lists exactly TRANSITIONS."""
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    spec = open(os.path.join(here, "..", "..", "docs", "SPEC.md"),
                encoding="utf-8").read()
    rows = set()
    for line in spec.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in STATES and cells[1] in EVENTS:
            rows.add((cells[0], cells[1], cells[2], None if cells[3] == "(no change)" else cells[3]))
    assert rows == set((s, e, n, a) for (s, e), (n, a) in TRANSITIONS.items())
    assert transition_table_dot() in spec  # the drawn diagram is the table's
