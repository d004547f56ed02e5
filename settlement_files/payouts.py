"""Follow the money to the bank: each settlement day's payout against the
bank statement's credits (docs/SPEC.md §7.10).  Pure: no files, no clock.

A settlement file says what the acquirer meant to pay; the bank statement
says what arrived.  The acquirer pays one lump credit per settlement day (or
batch), carrying the sum of that day's settled nets.  For each day D, in date
order, the check looks for an unused credit dated D .. D + window_days:

1. one whose amount is the expected sum within the tolerance: `ok`;
2. else the largest one below the expected sum: `deposit_short` (expected,
   received, the difference);
3. else none: `deposit_missing`.

A day whose expected sum is zero or negative (refunds outweigh sales) expects
no credit.  Credits left over are listed as `unexplained` (informational).
Cost: O(days x credits in the window), both a few per day.
"""

from datetime import date, timedelta


class PayoutDay:
    """What one settlement day should bring: the sum and what it is made of."""

    def __init__(self, day):
        self.day = day                  # "YYYY-MM-DD" in the merchant's zone
        self.expected = 0
        self.rows = 0
        self.sales = []                 # pos_txn_ids matched by the day's rows
        self.lines = []                 # settlement file lines (first ones)
        self.devices = {}               # device_id -> its pos_txn_ids (backend settle)

    def add(self, settled_amount, pos_txn_id=None, line=None, keep=200, device_id=None):
        self.expected += settled_amount
        self.rows += 1
        if pos_txn_id is not None and len(self.sales) < keep:
            self.sales.append(pos_txn_id)
        if device_id is not None:
            # Which terminals to alert when the payout is missing (SPEC 7.10.2).
            sales = self.devices.setdefault(device_id, [])
            if pos_txn_id is not None and len(sales) < keep:
                sales.append(pos_txn_id)
        if line is not None and len(self.lines) < keep:
            self.lines.append(line)


class PayoutTally:
    """Settlement rows -> PayoutDay per local settlement day."""

    def __init__(self, utc_offset_seconds):
        self.offset = utc_offset_seconds    # fn(unix seconds) -> offset seconds
        self.days = {}

    def add(self, row, pos_txn_id=None, device_id=None):
        seconds = row["settled_at"] // 1000
        local = seconds + self.offset(seconds)
        day = (date(1970, 1, 1) + timedelta(days=local // 86400)).isoformat()
        if day not in self.days:
            self.days[day] = PayoutDay(day)
        self.days[day].add(row["settled_amount"], pos_txn_id, row.get("line"),
                           device_id=device_id)


def check_payouts(days, credits, tolerance=0, window_days=3):
    """days: PayoutDay list; credits: dicts with line, day ("YYYY-MM-DD"),
    amount (minor units, > 0), counterparty, memo.  Returns (payouts,
    unexplained credits); each payout a dict with day, status, expected,
    received, difference, bank_line, sales, lines."""
    credits = sorted(credits, key=lambda c: (c["day"], c["line"]))
    used = set()
    out = []
    for d in sorted(days, key=lambda d: d.day):
        entry = {"day": d.day, "expected": d.expected, "rows": d.rows, "received": None,
                 "difference": None, "bank_line": None, "bank_day": None,
                 "sales": list(d.sales), "lines": list(d.lines),
                 "devices": dict((k, list(v)) for k, v in sorted(d.devices.items()))}
        if d.expected <= 0:
            entry["status"] = "no_payout_expected"
            out.append(entry)
            continue
        last = (date.fromisoformat(d.day) + timedelta(days=window_days)).isoformat()
        window = [i for i, c in enumerate(credits)
                  if i not in used and d.day <= c["day"] <= last]
        exact = [i for i in window if abs(credits[i]["amount"] - d.expected) <= tolerance]
        below = [i for i in window if credits[i]["amount"] < d.expected - tolerance]
        if exact:
            pick, status = exact[0], "ok"
        elif below:
            pick, status = max(below, key=lambda i: credits[i]["amount"]), "deposit_short"
        else:
            pick, status = None, "deposit_missing"
        entry["status"] = status
        if pick is not None:
            used.add(pick)
            c = credits[pick]
            entry.update(received=c["amount"], difference=d.expected - c["amount"],
                         bank_line=c["line"], bank_day=c["day"],
                         counterparty=c.get("counterparty"), memo=c.get("memo"))
        out.append(entry)
    unexplained = [credits[i] for i in range(len(credits)) if i not in used]
    return out, unexplained


FINDINGS = ("deposit_missing", "deposit_short")


def payout_counts(payouts):
    counts = dict((n, 0) for n in ("ok",) + FINDINGS)
    for p in payouts:
        if p["status"] in counts:
            counts[p["status"]] += 1
    return counts
