"""Test helpers for the settlement watchdog and alerts.

- `shanghai_profile()`: a validated profile dict (no file needed).
- `SimTerminal`: wires SettlementWatchdog -> AlertMachine the way the daemon
  will, and keeps what the daemon would journal (events with their check
  results, and every alert action), so a reboot can be replayed.
- `build_scenario()`: the issue's week: 1,000 transactions over 5 business
  days around a holiday and a weekend, and an acquirer script with a known
  number of each discrepancy.  Deterministic (seeded).
"""

import random

from daozhang.agent.core.settlement.alerts import AlertMachine
from daozhang.agent.core.business_calendar import (
    BusinessCalendar, DAY_SECONDS, FixedOffset, days_from_civil, format_rfc3339)
from daozhang.agent.core.settlement.fees import contracted_fee
from daozhang.agent.core.settlement.watchdog import SettlementWatchdog
from daozhang.profile import validate_profile

CST = 8 * 3600          # seconds (time zone offsets are seconds)
SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 3600 * SECOND    # every other time here is Unix milliseconds (SPEC 2)


def shanghai_profile(**settlement):
    data = {
        "merchant_id": "102290058120001", "terminal_id": "SH000001", "mcc": "5812",
        "region": "2900", "timezone": "Asia/Shanghai", "currency": "CNY",
        "settlement": {"mode": "T1", "cutoff": "23:00", "d0_within_minutes": 120,
                       "holidays": ["2027-01-01"]},
        "fees": {"tolerance": 1, "d0_surcharge": 200,
                 "debit": {"bp": 55, "cap": 2000}, "credit": {"bp": 60}},
    }
    data["settlement"].update(settlement)
    return validate_profile(data, "test-profile")


def local(y, m, d, hh=0, mm=0, ss=0):
    """Unix milliseconds of a Shanghai wall time."""
    return (days_from_civil(y, m, d) * DAY_SECONDS + hh * 3600 + mm * 60 + ss - CST) * 1000


def make_txn(n, kind="sale", amount=100000, mode="T1", when=None, card_type="debit", **more):
    """A transaction dict (journal shape plus seq); default time Mon 2027-01-04 10:00."""
    when = local(2027, 1, 4, 10) if when is None else when
    t = {"seq": n, "pos_txn_id": "P%d" % n, "kind": kind, "time": format_rfc3339(when // 1000, CST),
         "amount": amount, "currency": "CNY", "card": "622202******0001",
         "card_type": card_type, "auth_code": "A%05d" % n, "rrn": "R%011d" % n,
         "merchant_id": "102290058120001", "terminal_id": "SH000001", "mcc": "5812",
         "settlement": mode}
    t.update(more)
    return t


def make_row(t, ref="X1", settled_at=None, fee=None, settled=None, profile=None, **more):
    """The acquirer's settlement row for `t`, correct unless told otherwise;
    default settled_at one hour before the T1 deadline of a Monday sale."""
    profile = profile or shanghai_profile()
    settled_at = local(2027, 1, 5, 22) if settled_at is None else settled_at
    sign = -1 if t["kind"] == "refund" else 1
    if fee is None:
        fee = 0 if sign < 0 else contracted_fee(t["amount"], t["card_type"], profile["fees"],
                                                t["settlement"] == "D0")
    r = {"acquirer_ref": ref, "merchant_id": "102290058120001", "terminal_id": "SH000001",
         "rrn": t["rrn"], "auth_code": t["auth_code"], "txn_time": local(2027, 1, 4, 10),
         "kind": t["kind"], "card": t["card"], "amount": sign * t["amount"], "fee": fee,
         "settled_amount": sign * t["amount"] - fee if settled is None else settled,
         "settled_at": settled_at, "mcc": 5812, "region": 2900}
    r.update(more)
    return r


class SimTerminal:
    """The watchdog and the alert machine wired as the daemon wires them."""

    def __init__(self, profile, tz=None):
        self.profile = profile
        self.calendar = BusinessCalendar.from_profile(profile, tz or FixedOffset(CST))
        self.watchdog = SettlementWatchdog(profile, self.calendar)
        self.machine = AlertMachine(profile["currency"])
        self.journal = []   # ("event", event, check results) | ("alert", action)
        self.actions = []   # every alert action, in order

    def feed(self, event):
        outputs = self.watchdog.handle(event)
        checks = [out for tag, out in outputs if tag == "check"]
        if event[0] != "tick":
            self.journal.append(("event", event, checks))
        new = []
        for tag, out in outputs:
            if tag == "alert":
                new.extend(self.machine.observe(out))
        if event[0] == "tick":
            new.extend(self.machine.tick(event[1]))
        for action in new:
            self.journal.append(("alert", action))
        self.actions.extend(new)
        return new

    @classmethod
    def rebuild(cls, profile, journal, tz=None):
        """A fresh terminal from a journal: replay events (outputs dropped,
        check results compared) and restore alert actions."""
        term = cls(profile, tz)
        for item in journal:
            if item[0] == "event":
                outputs = term.watchdog.handle(item[1])
                recomputed = [out for tag, out in outputs if tag == "check"]
                if recomputed != item[2]:
                    raise AssertionError("replayed checks differ: %r != %r" % (recomputed, item[2]))
            else:
                term.machine.restore(item[1])
        term.journal = list(journal)
        return term


def _txn(seq, kind, when, amount, card_type, rng, mode="T1", original=None):
    t = {"seq": seq, "pos_txn_id": "P%05d" % seq, "kind": kind,
         "time": format_rfc3339(when // 1000, CST), "amount": amount, "currency": "CNY",
         "card": "622202******%04d" % rng.randrange(10000), "card_type": card_type,
         "auth_code": "%06d" % rng.randrange(1, 999999), "rrn": "%012d" % (100000 + seq),
         "merchant_id": "102290058120001", "terminal_id": "SH000001", "mcc": "5812",
         "settlement": mode}
    if original:
        t["original_pos_txn_id"] = original
    return t


# The discrepancies the acquirer script makes, and how many.
SCRIPT = {"late": 40, "very_late": 5, "short": 10, "over_fee": 5, "mcc": 5, "region": 3,
          "duplicate": 2, "unsettled": 8}
UNKNOWN_ROWS = 2
SALE_DAYS = [(2026, 12, 30), (2026, 12, 31), (2027, 1, 4), (2027, 1, 5), (2027, 1, 6)]
START = local(2026, 12, 30)
END = local(2027, 1, 12)


def build_scenario(seed=5):
    """-> dict with profile, transactions, rows (settlement dicts) and the
    sets of pos_txn_ids in each category.  The 40 late include 5 that come
    after the escalation to critical (very_late)."""
    rng = random.Random(seed)
    profile = shanghai_profile()
    cal = BusinessCalendar.from_profile(profile, FixedOffset(CST))
    txns, seq = [], 0
    sales = []
    for (y, m, d) in SALE_DAYS:
        for _ in range(200):
            seq += 1
            # 09:00 to 23:59: some after the 23:00 cut-off roll to the next day
            when = local(y, m, d, 9) + SECOND * rng.randrange(15 * 3600)
            mode = "D0" if rng.random() < 0.05 else "T1"
            t = _txn(seq, "sale", when, rng.randrange(500, 300000),
                     rng.choice(("debit", "credit")), rng, mode)
            txns.append(t)
            sales.append(t)
    txns.sort(key=lambda t: (t["time"], t["seq"]))
    # 10 voids and 10 refunds replace 20 of the 1,000 (still 1,000 records).
    t1_sales = [t for t in sales if t["settlement"] == "T1"]
    chosen = rng.sample(t1_sales, 20 + 20)
    void_targets, refund_targets = chosen[:10], chosen[10:20]
    for t in chosen[20:40]:  # drop 20 plain sales to keep exactly 1,000
        txns.remove(t)
        sales.remove(t)
    by_id = {}
    for t in txns:
        by_id[t["pos_txn_id"]] = t
    extra = []
    for t in void_targets:
        seq += 1
        when = _epoch(t) + MINUTE * rng.randrange(1, 10)
        extra.append(_txn(seq, "void", when, t["amount"], t["card_type"], rng,
                          original=t["pos_txn_id"]))
    for t in refund_targets:
        seq += 1
        when = _epoch(t) + HOUR * rng.randrange(1, 20)
        extra.append(_txn(seq, "refund", when, t["amount"] // 2, t["card_type"], rng,
                          original=t["pos_txn_id"]))
    txns.extend(extra)
    # seq follows the journal order: time order
    txns.sort(key=lambda t: (_epoch(t), t["seq"]))
    for i, t in enumerate(txns):
        t["seq"] = i + 1
    voided = set(t["pos_txn_id"] for t in void_targets)
    expecting = [t for t in txns if t["kind"] in ("sale", "refund") and t["pos_txn_id"] not in voided]
    plain = [t for t in expecting if t["kind"] == "sale" and t["settlement"] == "T1"]
    picks = rng.sample(plain, sum(SCRIPT.values()) - SCRIPT["very_late"])
    cats, i = {}, 0
    for name in ("late", "short", "over_fee", "mcc", "region", "duplicate", "unsettled"):
        n = SCRIPT[name]
        cats[name] = set(t["pos_txn_id"] for t in picks[i:i + n])
        i += n
    cats["very_late"] = set(sorted(cats["late"])[:SCRIPT["very_late"]])
    rows, ref = [], 0
    for t in expecting:
        key = t["pos_txn_id"]
        if key in cats["unsettled"]:
            continue
        when = _epoch(t)
        deadline = cal.deadline_ms(when, t["settlement"], 120)
        if t["settlement"] == "D0":
            settled_at = when + MINUTE * rng.randrange(20, 110)
        else:
            settled_at = deadline - SECOND * rng.randrange(3600, 20 * 3600)
        if key in cats["very_late"]:
            settled_at = cal.one_business_day_later_ms(deadline) + SECOND * rng.randrange(3600, 5 * 3600)
        elif key in cats["late"]:
            settled_at = deadline + SECOND * rng.randrange(3600, 20 * 3600)
        refund = t["kind"] == "refund"
        fee = 0 if refund else contracted_fee(t["amount"], t["card_type"], profile["fees"],
                                              t["settlement"] == "D0")
        if key in cats["over_fee"]:
            # two charged the D0 surcharge on a T1 sale, three a higher rate
            fee += 200 if len([k for k in cats["over_fee"] if k < key]) < 2 else 150
        settled = (-t["amount"] if refund else t["amount"]) - fee
        if key in cats["short"]:
            settled -= 500
        ref += 1
        row = {"acquirer_ref": "A%06d" % ref, "merchant_id": "102290058120001",
               "terminal_id": "SH000001", "rrn": t["rrn"], "auth_code": t["auth_code"],
               "txn_time": when, "kind": t["kind"], "card": t["card"],
               "amount": -t["amount"] if refund else t["amount"], "fee": fee,
               "settled_amount": settled, "settled_at": settled_at, "mcc": 5812, "region": 2900}
        if ref % 20 == 0:
            row["rrn"] = ""  # no rrn: matched by auth code, amount and time
        if key in cats["mcc"]:
            row["mcc"] = 5411
        if key in cats["region"]:
            row["region"] = 5810
        rows.append(row)
        if key in cats["duplicate"]:
            ref += 1
            dup = dict(row, acquirer_ref="A%06d" % ref, settled_at=settled_at + 6 * HOUR)
            rows.append(dup)
    for n in range(UNKNOWN_ROWS):
        ref += 1
        rows.append({"acquirer_ref": "A%06d" % ref, "merchant_id": "102290058120001",
                     "terminal_id": "SH000001", "rrn": "99999999999%d" % n, "auth_code": "",
                     "txn_time": local(2027, 1, 5, 12), "kind": "sale", "card": "",
                     "amount": 12345, "fee": 68, "settled_amount": 12277,
                     "settled_at": local(2027, 1, 6, 10 + n), "mcc": 5812, "region": 2900})
    cats["voided"] = voided
    return {"profile": profile, "transactions": txns, "rows": rows, "categories": cats,
            "calendar": cal}


def _epoch(t):
    from daozhang.agent.core.settlement.settlement_checks import txn_time_ms
    return txn_time_ms(t)


def timeline(scenario, tick_every=10 * MINUTE, start=START, end=END):
    """Every event in time order: transactions at their time, settlements at
    settled_at, a tick every `tick_every` ms.  At equal times:
    transaction, settlement, then tick."""
    items = []
    for t in scenario["transactions"]:
        items.append((_epoch(t), 0, t["seq"], ("transaction", t)))
    for i, r in enumerate(scenario["rows"]):
        items.append((r["settled_at"], 1, i, ("settlement", r, r["settled_at"])))
    now = start
    while now <= end:
        items.append((now, 2, 0, ("tick", now)))
        now += tick_every
    items.sort(key=lambda x: x[:3])
    return [x[3] for x in items]
