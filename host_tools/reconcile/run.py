"""Hold a journal against the acquirer's settlement file: the reconcile tool.

    summary = reconcile_files(journal, [pubkey], settlement_file, profile, as_of_ms)
    summary["counts"], summary["totals"], summary["transactions"]
    exit_code_for(summary)        # 0 all ok, 1 a discrepancy or tampering

Steps: verify the journal (host_tools/verify/journal.py, the independent verifier);
read its transactions (journal.py: a tampered journal is still
read, minus what the findings name); run the settlement checks of
agent/core/settlement/settlement_checks.py, the same code the terminal's watchdog
runs; enrich each transaction with what the report shows.

Safe behaviour on a tampered journal (README.md): the
verdict says so first (`journal.ok` false, exit code 1, a banner in the
report), and the reconciliation still runs on the records that remain, so
a settlement for a record that was altered or removed appears as an
unknown settlement rather than vanishing.
"""

from daozhang.agent.core.business_calendar import BusinessCalendar, format_rfc3339
from daozhang.agent.core.errors import LocalError, ValidationError
from daozhang.agent.core.settlement.alerts import format_money
from daozhang.agent.core.settlement.sale_index import MemorySaleIndex
from daozhang.agent.core.settlement.settlement_checks import COUNT_NAMES, TOTAL_NAMES, SettlementLedger
from daozhang.timezone import timezone_for
from daozhang.host_tools.reconcile.journal import journal_transactions
from daozhang.host_tools.reconcile.verdict import verdict_texts
from daozhang.host_tools.verify.journal import verify_journal
from daozhang.i18n import texts_for
from daozhang.settlement_files.payouts import FINDINGS as PAYOUT_FINDINGS
from daozhang.settlement_files.payouts import PayoutTally, check_payouts, payout_counts

# Checks that make the exit code 1, beyond COUNT_NAMES (ours: money settled
# for a voided or reversed sale).
EXTRA_FINDINGS = ("cancelled_settled",)


# Fields the ledger reads from a journaled transaction, and their types.  A
# verified journal only holds payloads txn.validate() accepted; this cheap
# check keeps a damaged one from reaching the ledger half-formed.
_TXN_SHAPE = (("pos_txn_id", str, False), ("kind", str, False), ("amount", int, False),
              ("time", str, False), ("settlement", str, True), ("card_type", str, True),
              ("original_pos_txn_id", str, True), ("rrn", str, True),
              ("auth_code", str, True), ("terminal_id", str, True), ("card", str, True))


def shape_problem(txn):
    """None, or which field of a journaled transaction has the wrong type."""
    for name, kind, optional in _TXN_SHAPE:
        value = txn.get(name)
        if value is None and optional:
            continue
        if type(value) is not kind:
            return "%s: expected %s, got %s" % (name, kind.__name__, type(value).__name__)
    return None


# Unknown settlements listed in full (the count is always exact): a file of
# a million rows matching nothing must not cost a million report entries.
MAX_UNKNOWN_LISTED = 10000


class ReconcileIndex(MemorySaleIndex):
    """The in-memory sale index, keeping per settlement row only what the
    report shows: a matched row's result lives on its sale's entry (first) and
    its line in `lines`; unknown rows are kept up to MAX_UNKNOWN_LISTED.  The
    reader has already dropped repeated acquirer_refs, so `result(ref)` is
    never needed to recognise a re-delivery.  Memory: O(sales + listed)."""

    def __init__(self):
        super().__init__()
        self.unknown_count = 0
        self.unknown_rows = {}          # acquirer_ref -> row, for the listed ones
        self.lines = {}                 # pos_txn_id -> [line of each matched row]

    def result(self, ref):
        return None

    def add_result(self, result, matched):
        if not matched:
            self.unknown_count += 1
            if len(self.unknown) < MAX_UNKNOWN_LISTED:
                self.unknown.append(result)


def _feed(ledger, index, rows, tally=None):
    for row in rows:
        result, entry, _new = ledger.settle(row)
        if tally is not None:
            tally.add(row, entry["pos_txn_id"] if entry is not None else None)
        if entry is not None:
            index.lines.setdefault(entry["pos_txn_id"], []).append(row.get("line"))
        elif len(index.unknown_rows) < MAX_UNKNOWN_LISTED:
            index.unknown_rows[result["acquirer_ref"]] = row


def run_ledger(profile, calendar, transactions, rows, as_of, tally=None):
    """settlement_checks.reconcile(), keeping the ledger for the details.

    Transactions by seq, then the rows: a list (a small file read whole) in
    settled_at, acquirer_ref order as `reconcile()` takes them (a test holds
    the summary equal to `reconcile()`'s); a stream (SettlementStream.rows(),
    a file of any size) in file order, so "the second" settlement of a sale
    is the later line.  A transaction the ledger refuses is returned in
    `refused` instead of stopping the whole run.
    """
    index = ReconcileIndex()
    ledger = SettlementLedger(profile, calendar, index=index)
    refused = []
    for txn in sorted(transactions, key=lambda t: (t.get("seq") or 0)):
        problem = shape_problem(txn)
        if problem is not None:
            name = txn.get("pos_txn_id")
            refused.append({"seq": txn.get("seq"), "pos_txn_id": name if type(name) is str else None,
                            "why": "refused", "reason": "not a transaction payload: %s" % problem})
            continue
        try:
            ledger.add_transaction(txn)
        except (ValidationError, LocalError) as exc:
            refused.append({"seq": txn.get("seq"), "pos_txn_id": txn.get("pos_txn_id"),
                            "why": "refused", "reason": "refused by the checks: %s" % exc})
    if isinstance(rows, list):
        rows = sorted(rows, key=lambda r: (r["settled_at"], r["acquirer_ref"]))
    _feed(ledger, index, rows, tally)
    summary = ledger.summary(as_of)
    summary["counts"]["unknown_settlement"] = index.unknown_count
    return ledger, summary, refused


class _Clock:
    """Unix ms -> RFC 3339 text in the merchant's zone."""

    def __init__(self, tz):
        self.tz = tz

    def text(self, ms):
        if ms is None:
            return None
        seconds = ms // 1000
        return format_rfc3339(seconds, self.tz.utcoffset_seconds(seconds))


def _detail(entry, ledger, lines, clock, status):
    txn = entry["txn"]
    first = entry["first"]
    out = {"seq": status["seq"], "pos_txn_id": status["pos_txn_id"], "kind": status["kind"],
           "status": status["status"], "checks": list(status["checks"]),
           "amount": status["amount"], "card": txn.get("card"), "card_type": txn.get("card_type"),
           "mode": status["mode"], "rrn": txn.get("rrn"), "auth_code": txn.get("auth_code"),
           "time_ms": status["time"], "time": clock.text(status["time"]),
           "deadline_ms": status["deadline"], "deadline": clock.text(status["deadline"]),
           "settled_at_ms": status["settled_at"], "settled_at": clock.text(status["settled_at"]),
           "settled_amount": status["settled_amount"], "acquirer_refs": status["acquirer_refs"],
           "lines": list(lines.get(status["pos_txn_id"], ())),
           "delay_ms": None, "late_by_ms": None, "reported_fee": None, "contracted_fee": None,
           "expected_settled": None, "shortfall": 0, "fee_excess": 0, "mcc": None,
           "region": None, "expects_money": ledger.expects_settlement(entry)}
    if first is not None and out["expects_money"]:
        out.update(reported_fee=first["reported_fee"], contracted_fee=first["contracted_fee"],
                   expected_settled=first["expected_settled"], shortfall=first["shortfall"],
                   fee_excess=first["fee_excess"], mcc=first["mcc"], region=first["region"])
        out["delay_ms"] = first["settled_at"] - status["time"]
        if status["deadline"] is not None and first["settled_at"] > status["deadline"]:
            out["late_by_ms"] = first["settled_at"] - status["deadline"]
    return out


def _unknown(result, row, clock):
    return {"acquirer_ref": result["acquirer_ref"], "line": row.get("line"),
            "checks": list(result["checks"]), "kind": row.get("kind"), "amount": row["amount"],
            "fee": row["fee"], "settled_amount": row["settled_amount"],
            "settled_at_ms": row["settled_at"], "settled_at": clock.text(row["settled_at"]),
            "txn_time_ms": row.get("txn_time"), "txn_time": clock.text(row.get("txn_time")),
            "card": row.get("card"), "terminal_id": row.get("terminal_id"), "rrn": row.get("rrn"),
            "auth_code": row.get("auth_code"), "mcc": result["mcc"], "region": result["region"]}


def _payouts(bank, tally, profile):
    """The bank-statement check (settlement_files/payouts.py), JSON-ready."""
    days, unexplained = check_payouts(tally.days.values(), bank.credits,
                                      profile["fees"]["tolerance"], bank.window_days)
    return {"bank": bank.as_dict(), "days": days, "unexplained": unexplained,
            "counts": payout_counts(days)}


def build_summary(profile, transactions, excluded, report, settlement_file, as_of_ms,
                  journal_path=None, bank=None):
    """The whole reconcile result as plain data (JSON-ready)."""
    tz = timezone_for(profile["timezone"])
    calendar = BusinessCalendar.from_profile(profile, tz)
    clock = _Clock(tz)
    streamed = hasattr(settlement_file, "info")      # a SettlementStream
    rows = settlement_file.rows() if streamed else settlement_file.rows
    tally = PayoutTally(tz.utcoffset_seconds) if bank is not None else None
    ledger, core, refused = run_ledger(profile, calendar, transactions, rows, as_of_ms, tally)
    if streamed:
        settlement_file = settlement_file.info
    index = ledger.index
    details = [_detail(ledger.entries[st["pos_txn_id"]], ledger, index.lines, clock, st)
               for st in core["transactions"]]
    unknown = [_unknown(res, index.unknown_rows[res["acquirer_ref"]], clock)
               for res in core["unknown_settlements"]]
    findings = [f.as_dict() for f in report.findings]
    journal = {"path": journal_path, "ok": report.ok, "device_id": report.device_id,
               "first_seq": report.first_seq, "last_seq": report.last_seq,
               "records": report.records, "signatures_checked": report.signatures_checked,
               "findings": findings, "transactions": len(transactions) - len(refused),
               "excluded": list(excluded) + refused}
    summary = {"as_of_ms": as_of_ms, "as_of": clock.text(as_of_ms),
               "currency": profile.get("currency", "CNY"),
               "locale": profile.get("locale") or "en",
               "merchant": dict((k, profile.get(k)) for k in (
                   "name", "merchant_id", "terminal_id", "mcc", "region", "timezone")),
               "journal": journal, "settlement_file": settlement_file.as_dict(),
               "counts": dict((n, core["counts"][n]) for n in COUNT_NAMES),
               "other_counts": dict(core["other_counts"]),
               "totals": dict((n, core["totals"][n]) for n in TOTAL_NAMES),
               "transactions": details, "unknown_settlements": unknown}
    summary["payouts"] = _payouts(bank, tally, profile) if bank is not None else None
    summary["totals_text"] = dict((n, format_money(v, summary["currency"]))
                                  for n, v in summary["totals"].items())
    summary["exit_code"] = exit_code_for(summary)
    summary["verdict"] = verdict_reasons(summary)
    summary["ok"] = summary["exit_code"] == 0
    return summary


def verdict_reasons(summary):
    """Why the exit code is 1, as short English phrases (empty: all settled
    right); host_tools/reconcile/verdict.py words them, in any locale."""
    return verdict_texts(summary, texts_for("en"))


def exit_code_for(summary):
    """0: intact journal, every settlement right, no bad row; else 1.
    A transaction left out counts, unless only because it was never committed."""
    if not summary["journal"]["ok"] or summary["settlement_file"]["bad_rows"]:
        return 1
    if any(x["why"] != "uncommitted" for x in summary["journal"]["excluded"]):
        return 1
    if any(summary["counts"][n] for n in COUNT_NAMES if n != "ok"):
        return 1
    if any(summary["other_counts"].get(n) for n in EXTRA_FINDINGS):
        return 1
    if summary["settlement_file"].get("card_masked"):
        return 1
    payouts = summary.get("payouts")
    if payouts and any(payouts["counts"][n] for n in PAYOUT_FINDINGS):
        return 1
    return 0


def reconcile_files(journal_path, pubkeys, settlement_file, profile, as_of_ms, anchor=None,
                    progress=None, bank=None):
    """Verify the journal, read it, hold it against a parsed SettlementFile."""
    # Every signature: a money report names each commit a bad signature leaves unvouched.
    report = verify_journal(journal_path, list(pubkeys), anchor=anchor, progress=progress, all_signatures=True)
    transactions, excluded = journal_transactions(journal_path, report.findings)
    return build_summary(profile, transactions, excluded, report, settlement_file, as_of_ms,
                         str(journal_path), bank)
