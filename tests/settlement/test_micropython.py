"""Fees, calendar, checks, watchdog and the alert machine run unchanged on
MicroPython 1.29 and give CPython's output, byte for byte (canonical CBOR
of everything they emit, which also proves it all journals as CBOR)."""

import contextlib
import io

import pytest

from dztest.micropython import run_micropython

pytestmark = pytest.mark.timeout(300)

SCENARIO = r'''
import binascii
from daozhang.agent.core import cbor
from daozhang.agent.core.settlement.alerts import AlertMachine, transition_table_dot
from daozhang.agent.core.business_calendar import (
    BusinessCalendar, FixedOffset, days_from_civil, format_rfc3339, parse_rfc3339,
    parse_rfc3339_ms)
from daozhang.agent.core.settlement.fees import contracted_fee
from daozhang.agent.core.settlement.settlement_checks import reconcile
from daozhang.agent.core.settlement.watchdog import SettlementWatchdog

CST = 28800
profile = {"merchant_id": "102290058120001", "terminal_id": "SH000001", "mcc": "5812",
           "region": "2900", "timezone": "Asia/Shanghai", "currency": "CNY",
           "settlement": {"mode": "T1", "cutoff": "23:00", "cutoff_minutes": 1380,
                          "d0_within_minutes": 120, "holidays": ["2027-01-01"], "workdays": []},
           "fees": {"tolerance": 1, "d0_surcharge": 200,
                    "card_types": {"debit": {"bp": 55, "cap": 2000}, "credit": {"bp": 60, "cap": None}}}}
cal = BusinessCalendar.from_profile(profile, FixedOffset(CST))

def local(y, m, d, hh=0, mm=0):
    """Unix ms of a Shanghai wall time."""
    return (days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 - CST) * 1000

fees = [contracted_fee(a, c, profile["fees"], d0) for a in (1, 909, 1000, 363636, 10000000)
        for c in ("debit", "credit") for d0 in (False, True)]
print("fees", fees)
edges = []
for text in ("2026-12-31T22:59:59+08:00", "2026-12-31T23:00:00+08:00", "2027-01-02T12:00:00Z",
             "2027-01-04T09:30:00.25+08:00"):
    t = parse_rfc3339(text)
    edges.append([format_rfc3339(cal.deadline(t, m, 120), CST) for m in ("D0", "T0", "T1", "T2")])
    edges.append([cal.deadline_ms(parse_rfc3339_ms(text), m, 120) for m in ("D0", "T1")])
print("deadlines", edges)

def sale(n, when, amount, kind="sale", mode="T1", original=None, card_type="debit"):
    t = {"seq": n, "pos_txn_id": "P%d" % n, "kind": kind, "time": format_rfc3339(when // 1000, CST),
         "amount": amount, "currency": "CNY", "card": "622202******0001", "card_type": card_type,
         "auth_code": "%06d" % (n * 7), "rrn": "%012d" % n, "merchant_id": "102290058120001",
         "terminal_id": "SH000001", "mcc": "5812", "settlement": mode}
    if original:
        t["original_pos_txn_id"] = original
    return t

txns = []
for i in range(24):
    txns.append(sale(i + 1, local(2026, 12, 30 + (i % 2), 9 + i % 15, i), 1000 + 977 * i,
                     mode="D0" if i == 5 else "T1", card_type="credit" if i % 3 else "debit"))
txns.append(sale(25, local(2026, 12, 31, 21), 500, kind="void", original="P2"))
txns.append(sale(26, local(2026, 12, 31, 22), 300, kind="refund", original="P1"))

def row(t, ref, settled_at, fee_extra=0, short=0, mcc=5812, region=2900):
    sign = -1 if t["kind"] == "refund" else 1
    fee = 0 if sign < 0 else contracted_fee(t["amount"], t["card_type"], profile["fees"], t["settlement"] == "D0")
    fee += fee_extra
    return {"acquirer_ref": ref, "merchant_id": "102290058120001", "terminal_id": "SH000001",
            "rrn": t["rrn"], "auth_code": t["auth_code"], "txn_time": parse_rfc3339_ms(t["time"]),
            "kind": t["kind"], "card": t["card"], "amount": sign * t["amount"], "fee": fee,
            "settled_amount": sign * t["amount"] - fee - short, "settled_at": settled_at,
            "mcc": mcc, "region": region}

rows = []
for t in txns:
    n = t["seq"]
    if n in (2, 25, 9, 10):
        continue  # voided, the void itself, and two never settled
    dl = cal.deadline_ms(parse_rfc3339_ms(t["time"]), t["settlement"], 120)
    at = dl - 3600000
    if n == 3: at = dl + 7200000                 # late
    if n == 4: at = cal.one_business_day_later_ms(dl) + 60000   # very late: escalated first
    rows.append(row(t, "A%d" % n, at, fee_extra=150 if n == 6 else 0, short=400 if n == 7 else 0,
                    mcc=5411 if n == 8 else 5812, region=5810 if n == 11 else 2900))
rows.append(dict(rows[-1], acquirer_ref="DUP", settled_at=rows[-1]["settled_at"] + 60000))
rows.append({"acquirer_ref": "UNK", "rrn": "x", "auth_code": "", "amount": 5, "fee": 0,
             "settled_amount": 5, "settled_at": local(2027, 1, 4, 8), "txn_time": None})

events = []
for t in txns:
    events.append((parse_rfc3339_ms(t["time"]), 0, t["seq"], ("transaction", t)))
for i, r in enumerate(rows):
    events.append((r["settled_at"], 1, i, ("settlement", r, r["settled_at"])))
now = local(2026, 12, 30)
while now < local(2027, 1, 9):
    events.append((now, 2, 0, ("tick", now)))
    now += 3600000
events.sort(key=lambda e: (e[0], e[1], e[2]))

wd = SettlementWatchdog(profile, cal)
machine = AlertMachine("CNY")
out = []
for e in events:
    ev = e[3]
    for tag, item in wd.handle(ev):
        if tag == "check":
            out.append(item)
        else:
            out.extend(machine.observe(item))
    if ev[0] == "tick":
        out.extend(machine.tick(ev[1]))
summary = reconcile(profile, cal, txns, rows, local(2027, 1, 9))
blob = cbor.dumps([fees, edges, out, machine.state(), machine.group_lines(),
                   summary["counts"], summary["totals"], wd.state(), wd.release_cursor()])
print("counts", sorted(summary["counts"].items()))
print("lines", machine.group_lines())
print("actions", len(out))
print("sha", binascii.hexlify(__import__("hashlib").sha256(blob).digest()).decode())
print("dot", len(transition_table_dot()))
'''


def run_cpython(code):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, "<scenario>", "exec"), {"__name__": "__scenario__"})
    return buf.getvalue()


def test_core_scenario_same_on_micropython_and_cpython():
    expected = run_cpython(SCENARIO)
    # the scenario really exercises every kind of finding
    assert "('late', 2)" in expected and "('not_arrived', 2)" in expected
    for name in ("short", "over_fee", "mcc_jump", "region_jump", "unknown_settlement",
                 "duplicate_settlement"):
        assert "('%s', 1)" % name in expected, name
    assert "2 payments overdue" in expected
    assert run_micropython(SCENARIO) == expected
