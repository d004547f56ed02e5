"""Clock stepped back by a day at boot: clock_untrusted fires, and no
deadline alert fires until the clock is trusted again."""

from dztest.settlement import HOUR, MINUTE, SimTerminal, local, shanghai_profile
from daozhang.agent.core.business_calendar import format_rfc3339

CST = 8 * 3600


def sale(seq, when, amount=10000):
    return {"seq": seq, "pos_txn_id": "S%d" % seq, "kind": "sale",
            "time": format_rfc3339(when // 1000, CST), "amount": amount, "currency": "CNY",
            "card": "622202******1234", "card_type": "debit", "auth_code": "%06d" % seq,
            "rrn": "%012d" % seq, "merchant_id": "102290058120001", "terminal_id": "SH000001",
            "mcc": "5812", "settlement": "T1"}


def row(txn, settled_at, ref):
    fee = (txn["amount"] * 55 + 5000) // 10000
    return {"acquirer_ref": ref, "merchant_id": "102290058120001", "terminal_id": "SH000001",
            "rrn": txn["rrn"], "auth_code": txn["auth_code"], "txn_time": None, "kind": "sale",
            "card": txn["card"], "amount": txn["amount"], "fee": fee,
            "settled_amount": txn["amount"] - fee, "settled_at": settled_at,
            "mcc": 5812, "region": 2900}


def test_clock_stepped_back_holds_deadline_alerts_until_trusted():
    term = SimTerminal(shanghai_profile())
    monday = local(2027, 1, 4, 10)
    sales = [sale(i + 1, monday + i * 60) for i in range(3)]  # deadline Tue 5th 23:00
    for s in sales:
        term.feed(("transaction", s))
    real_boot = local(2027, 1, 5, 20)
    stepped = real_boot - 24 * HOUR
    acts = term.feed(("clock", False, stepped))
    assert [(a["kind"], a["action"]) for a in acts] == [("clock_untrusted", "pending"),
                                                        ("clock_untrusted", "firing")]
    # The untrusted clock wanders, even past the deadline: nothing is overdue.
    held = []
    for minutes in range(0, 3 * 24 * 60, 10):
        held.extend(term.feed(("tick", stepped + minutes * MINUTE)))
    assert set(a["kind"] for a in held) == {"clock_untrusted"}
    # One settlement arrives meanwhile: checked on the acquirer's times, fine.
    term.feed(("settlement", row(sales[0], local(2027, 1, 5, 18), "A1"), stepped))
    assert term.watchdog.ledger.entries["S1"]["checks"] == []
    # Trusted again (NTP) on Wednesday: the clock alert resolves, and the two
    # unsettled sales are overdue on the next tick, not before.
    wednesday = local(2027, 1, 6, 9)
    acts = term.feed(("clock", True, wednesday))
    assert [(a["kind"], a["action"]) for a in acts] == [("clock_untrusted", "resolved")]
    acts = term.feed(("tick", wednesday))
    assert sorted((a["kind"], a["key"], a["action"]) for a in acts) == [
        ("settlement_overdue", "S2", "firing"), ("settlement_overdue", "S2", "pending"),
        ("settlement_overdue", "S3", "firing"), ("settlement_overdue", "S3", "pending")]
    assert all(a["since"] == local(2027, 1, 5, 23) for a in acts)


def test_clock_untrusted_holds_escalation_of_firing_overdue():
    term = SimTerminal(shanghai_profile())
    s = sale(1, local(2027, 1, 4, 10))
    term.feed(("transaction", s))
    term.feed(("tick", local(2027, 1, 5, 23, 10)))  # overdue: fires (warning)
    assert term.machine.alerts[("settlement_overdue", "S1")]["state"] == "firing"
    term.feed(("clock", False, local(2027, 1, 5, 23, 20)))
    # escalation would be Wed 23:00; the untrusted clock holds it
    for hours in range(1, 48):
        acts = term.feed(("tick", local(2027, 1, 5, 23, 20) + hours * HOUR))
        assert not [a for a in acts if a["kind"] == "settlement_overdue"]
    assert term.machine.alerts[("settlement_overdue", "S1")]["severity"] == "warning"
    term.feed(("clock", True, local(2027, 1, 7, 23)))
    acts = term.feed(("tick", local(2027, 1, 7, 23)))
    assert [(a["kind"], a["action"], a["severity"]) for a in acts] == [
        ("settlement_overdue", "escalated", "critical")]
