"""The demo's simulated acquirer: settles most sales right, some not.

Each sale gets a fate from a fixed cycle (`FATES`), so every run, even a
30-second one, shows each kind early and in the same order: settled right,
late, short, fee over contract, settled under another MCC or region
(code jumping), or never.  `plan_settlement` is pure: sale in, the CSV row
the acquirer will send (and when) out.

The acquirer sends what has come due as a settlement file in the documented
default CSV layout (docs/SPEC.md §7.9) every `batch_s` seconds and
runs the operator's step, `daozhang backend settle FILE --config ... --json`,
which matches the rows to stored receipts and sends each device its signed
settlement acks.  A row waits until its sale has reached the backend (the
backend matches rows against the receipts it holds; a real acquirer's file
comes a day later, long after the terminal synced).
"""

import csv
import io
import os
import random
import threading

from daozhang.agent.core.business_calendar import BusinessCalendar
from daozhang.agent.core.settlement.fees import contracted_fee
from daozhang.timezone import ZoneInfoTimezone
from daozhang.host_tools.demo.events import DemoEvent
from daozhang.host_tools.demo.pos import money, rfc3339
from daozhang.host_tools.demo.processes import ProcessFailed

COLUMNS = ("acquirer_ref", "merchant_id", "terminal_id", "rrn", "auth_code", "txn_time", "kind",
           "card", "amount", "fee", "settled_amount", "settled_at", "mcc", "region")

# One sale in 20 each: late twice, short, over-fee, MCC jump, region jump,
# never; the rest settle right.  Sale 3 is the first late one, so its
# overdue alert fires and resolves within the first seconds.
FATES = ("ok", "ok", "late", "ok", "short", "ok", "ok", "over_fee", "ok", "mcc_jump",
         "ok", "ok", "late", "ok", "region_jump", "ok", "ok", "never", "ok", "ok")
JUMP_MCC = "5411"        # supermarkets: a cheaper category than the restaurant's 5812
JUMP_REGION = "5840"     # Shenzhen, not the shop's Shanghai (2900)


def fate_of(number):
    return FATES[(number - 1) % len(FATES)]


def deadline_ms(txn, sale_ms, profile, calendar):
    mode = txn.get("settlement") or profile["settlement"]["mode"]
    return calendar.deadline_ms(sale_ms, mode, profile["settlement"]["d0_within_minutes"])


def plan_settlement(number, txn, sale_ms, profile, calendar, rng):
    """(due_ms, row, fate) for sale `number`, or (None, None, "never")."""
    fate = fate_of(number)
    if fate == "never":
        return None, None, fate
    due = deadline_ms(txn, sale_ms, profile, calendar)
    window = max(due - sale_ms, 60000)
    if fate == "late":
        settled_at = due + int(window * rng.uniform(0.4, 0.6))
    else:
        settled_at = sale_ms + int(window * rng.uniform(0.2, 0.6))
    mode = txn.get("settlement") or profile["settlement"]["mode"]
    settled_d0 = mode == "D0" and settled_at <= due
    amount = txn["amount"]
    fee = contracted_fee(amount, txn["card_type"], profile["fees"], settled_d0) or 0
    settled = amount - fee
    mcc, region = profile["mcc"], profile["region"]
    if fate == "short":
        settled -= max(100, amount // 50)                  # 2 % missing beyond the fee
    elif fate == "over_fee":
        fee += max(50, amount * 30 // 10000)              # 0.30 % above contract...
        settled = amount - fee                             # ...and paid out consistently
    elif fate == "mcc_jump":
        mcc = JUMP_MCC
    elif fate == "region_jump":
        region = JUMP_REGION
    row = {"acquirer_ref": "ACQ-%s-%05d" % (txn["pos_txn_id"].split("-")[1], number),
           "merchant_id": txn["merchant_id"], "terminal_id": txn["terminal_id"],
           "rrn": txn["rrn"], "auth_code": txn["auth_code"], "txn_time": txn["time"],
           "kind": txn["kind"], "card": txn["card"], "amount": amount, "fee": fee,
           "settled_amount": settled, "settled_at": rfc3339(settled_at),
           "mcc": mcc, "region": region}
    return settled_at, row, fate


def settlement_csv(rows):
    """The default layout: header line, then one line per row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([row[c] for c in COLUMNS])
    return out.getvalue()


class Acquirer(threading.Thread):
    """Collects sales (`sale_made`), sends due rows every `batch_s` seconds.

    `synced(seq)` says whether the backend holds journal record `seq`;
    `settle(path) -> report` runs the backend's settle step.
    """

    def __init__(self, directory, clock, profile, emit, synced, settle, batch_s=2.0, seed=7):
        super().__init__(name="demo-acquirer", daemon=True)
        self.directory = directory
        self.clock = clock
        self.profile = profile
        self.calendar = BusinessCalendar.from_profile(profile, ZoneInfoTimezone(profile["timezone"]))
        self.emit = emit
        self.synced = synced
        self.settle = settle
        self.batch_s = batch_s
        self.rng = random.Random(seed)
        self.pending = []           # (due_ms, seq, row, fate)
        self.files = 0
        self.never = 0
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def sale_made(self, txn, receipt, sale_ms=None):
        number = int(txn["pos_txn_id"].rsplit("-", 1)[-1])
        sale_ms = self.clock.now_ms() if sale_ms is None else sale_ms
        due, row, fate = plan_settlement(number, txn, sale_ms, self.profile, self.calendar, self.rng)
        with self._lock:
            if row is None:
                self.never += 1
            else:
                self.pending.append((due, receipt["seq"], row, fate))

    def stop(self):
        self._halt.set()

    def run(self):
        while not self._halt.wait(self.batch_s):
            self.send_due()

    def send_due(self):
        now = self.clock.now_ms()
        with self._lock:
            due = [p for p in self.pending if p[0] <= now and self.synced(p[1])]
            self.pending = [p for p in self.pending if p not in due]
        if not due:
            return None
        due.sort(key=lambda p: p[0])
        self.files += 1
        path = os.path.join(self.directory, "settlement-%04d.csv" % self.files)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(settlement_csv([p[2] for p in due]))
        fates = {}
        for p in due:
            fates[p[3]] = fates.get(p[3], 0) + 1
        described = ", ".join("%d %s" % (n, f) for f, n in sorted(fates.items()))
        total = sum(p[2]["settled_amount"] for p in due)
        try:
            report = self.settle(path)
        except ProcessFailed as exc:
            self.emit(DemoEvent("settle", "acquirer %s: %d rows (%s): backend settle FAILED: %s"
                                % (os.path.basename(path), len(due), described, exc),
                                {"rows": len(due), "matched": 0, "failed": True, "fates": fates}))
            return None
        self.emit(DemoEvent("settle", "acquirer %s: %d row%s, %s paid out (%s) -> backend sent %d "
                            "settlement acks" % (os.path.basename(path), len(due),
                                                 "" if len(due) == 1 else "s", money(total),
                                                 described, report.get("sent", 0)),
                            {"rows": len(due), "matched": report.get("sent", 0),
                             "unknown": report.get("unknown", 0), "fates": fates}))
        return report


def backend_settle(run_cli, config_path):
    """The settle step as the operator runs it, for `Acquirer(settle=...)`."""
    import json

    def settle(path):
        # Bounded below the demo's 30 s wait for the acquirer at shutdown.
        out = run_cli("backend", "settle", path, "--config", config_path, "--json", timeout=20,
                      show=False)
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise ProcessFailed("`daozhang backend settle` printed no JSON report: %r" % out[-300:])
    return settle
