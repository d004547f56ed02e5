"""The issue's week on a simulated clock: 1,000 transactions over 5 business
days with a weekend and a holiday, an acquirer script with known
discrepancies; exactly the expected alerts fire, escalate and resolve, and a
reboot in the middle rebuilds the same state from the journal."""

import collections

import pytest

from daozhang.agent.core.settlement.settlement_checks import reconcile
from dztest.settlement import END, HOUR, MINUTE, SimTerminal, build_scenario, local, timeline

DAY = 24 * HOUR


@pytest.fixture(scope="module")
def scenario():
    return build_scenario()


@pytest.fixture(scope="module")
def run(scenario):
    term = SimTerminal(scenario["profile"])
    for event in timeline(scenario):
        term.feed(event)
    return term


def _by(actions, name):
    return collections.Counter(a["kind"] for a in actions if a["action"] == name)


def test_scenario_shape(scenario):
    txns = scenario["transactions"]
    assert len(txns) == 1000
    days = set(t["time"][:10] for t in txns if t["kind"] == "sale")
    assert days == {"2026-12-30", "2026-12-31", "2027-01-04", "2027-01-05", "2027-01-06"}
    assert [t["seq"] for t in txns] == list(range(1, 1001))


def test_exactly_the_expected_alerts_fire(run, scenario):
    cats = scenario["categories"]
    fired = _by(run.actions, "firing")
    assert fired == {"settlement_overdue": 40 + 8, "settlement_short": 10,
                     "fee_over_contract": 5, "mcc_jump": 5, "region_jump": 3,
                     "unknown_settlement": 2, "duplicate_settlement": 2}
    overdue_keys = set(a["key"] for a in run.actions
                       if a["action"] == "firing" and a["kind"] == "settlement_overdue")
    assert overdue_keys == cats["late"] | cats["unsettled"]
    for kind, cat in (("settlement_short", "short"), ("fee_over_contract", "over_fee"),
                      ("mcc_jump", "mcc"), ("region_jump", "region")):
        assert set(a["key"] for a in run.actions
                   if a["action"] == "firing" and a["kind"] == kind) == cats[cat]
    # every alert fires once: no flapping
    firing_ids = [(a["kind"], a["key"]) for a in run.actions if a["action"] == "firing"]
    assert len(firing_ids) == len(set(firing_ids))
    assert _by(run.actions, "withdrawn") == {}


def test_overdue_escalate_and_resolve(run, scenario):
    cats = scenario["categories"]
    escalated = set(a["key"] for a in run.actions if a["action"] == "escalated")
    assert escalated == cats["unsettled"] | cats["very_late"]
    resolved = set(a["key"] for a in run.actions if a["action"] == "resolved")
    assert resolved == cats["late"]
    assert _by(run.actions, "resolved") == {"settlement_overdue": 40}
    # one-shot findings resolve themselves a week after they fired, no sooner
    ttl = 7 * DAY
    fired = dict(((a["kind"], a["key"]), a["at"]) for a in run.actions if a["action"] == "firing")
    expired = dict(((a["kind"], a["key"]), a["at"]) for a in run.actions if a["action"] == "expired")
    assert expired, "the week should be long enough for some findings to expire"
    for ident, at in fired.items():
        if ident[0] == "settlement_overdue":
            assert ident not in expired
        elif at + ttl <= END:
            assert expired[ident] - at - ttl < 10 * MINUTE  # the first tick after the ttl
        else:
            assert ident not in expired
    # escalation happens a business day after the deadline, never before
    for a in run.actions:
        if a["action"] == "escalated":
            assert a["at"] >= a["escalate_at"] and a["severity"] == "critical"
    # what is still firing at the end: the 8 unsettled, critical, and the findings
    still = collections.Counter((r["kind"], r["severity"]) for r in run.machine.firing())
    assert still[("settlement_overdue", "critical")] == 8
    assert still[("settlement_overdue", "warning")] == 0


def test_display_line_groups_overdue(run, scenario):
    unsettled = scenario["categories"]["unsettled"]
    total = sum(t["amount"] for t in scenario["transactions"] if t["pos_txn_id"] in unsettled)
    lines = run.machine.group_lines()
    want = "8 payments overdue, ¥{:,}.{:02d}".format(total // 100, total % 100)
    assert lines[0] == want  # critical first


def test_checks_agree_with_reconcile(run, scenario):
    as_of = local(2027, 1, 12)
    batch = reconcile(scenario["profile"], scenario["calendar"], scenario["transactions"],
                      scenario["rows"], as_of)
    assert batch["counts"] == {"ok": 907, "not_arrived": 8, "late": 40, "short": 10,
                               "over_fee": 5, "mcc_jump": 5, "region_jump": 3,
                               "unknown_settlement": 2, "duplicate_settlement": 2}
    assert batch["other_counts"] == {"pending": 0, "cancelled": 20, "cancelled_settled": 0}
    live = run.watchdog.summary(as_of)
    assert live["counts"] == batch["counts"]
    assert live["totals"] == batch["totals"]
    totals = batch["totals"]
    assert totals["missing"] > 0 and totals["gross"] > totals["expected_net"] > totals["settled"]


def test_reboot_mid_week_rebuilds_the_same_state(scenario):
    events = timeline(scenario)
    reboot_at = local(2027, 1, 4, 12)
    cut = next(i for i, e in enumerate(events) if e[0] == "tick" and e[1] >= reboot_at)
    straight = SimTerminal(scenario["profile"])
    for e in events[:cut]:
        straight.feed(e)
    assert straight.machine.firing(), "the reboot should happen with alerts firing"
    rebooted = SimTerminal.rebuild(scenario["profile"], straight.journal)
    assert rebooted.watchdog.state() == straight.watchdog.state()
    assert rebooted.machine.state() == straight.machine.state()
    # from here on, both emit exactly the same actions
    for e in events[cut:]:
        assert rebooted.feed(e) == straight.feed(e)
    assert rebooted.machine.state() == straight.machine.state()


def test_release_cursor(run, scenario):
    cats = scenario["categories"]
    cursor = run.watchdog.release_cursor()
    first_unsettled = min(t["seq"] for t in scenario["transactions"]
                          if t["pos_txn_id"] in cats["unsettled"] | cats["voided"]
                          or t["kind"] == "void")
    assert cursor == first_unsettled
    # five weeks later every unsettled sale has expired by policy, and its
    # overdue alert is cleared
    outputs = run.watchdog.tick(local(2027, 3, 1))
    assert sorted(o["key"] for tag, o in outputs if not o["active"]) == sorted(cats["unsettled"])
    assert run.watchdog.release_cursor() is None
