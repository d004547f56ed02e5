"""A bank statement export -> the credits the payout check needs (§7.10).

The statement is read through the same map language as settlement files
(CSV in any encoding, .xlsx, .xls; title rows, 合计 rows, decorations), with
its own columns:

    [columns]
    date = "交易日期"                                # or {date = ..., time = ...}
    amount = {credit = "贷方发生额", debit = "借方发生额"} # or one signed column
    counterparty = "对方户名"                        # optional
    memo = "摘要"                                    # optional
    [bank]
    counterparty = "银联商务"       # only credits whose counterparty or memo holds this
    window_days = 3                 # a payout may arrive up to this many days late

Only credits (amount > 0) are kept; debits are the merchant's own spending.
"""

from datetime import timedelta

from daozhang.toml_tables import read_toml
from daozhang.settlement_files.card_mask import mask_cell
from daozhang.settlement_files.errors import MappingError, RowProblem
from daozhang.settlement_files.mapping import mapping_from_dict
from daozhang.settlement_files.reader import SettlementStream
from daozhang.settlement_files.rows import FileContext, column_value, first_cell
from daozhang.settlement_files.values import EPOCH

BANK_COLUMNS = ("date", "amount", "counterparty", "memo")
MAX_TEXT = 200


class BankStatement:
    def __init__(self, name, credits, bad_rows, counterparty, window_days, skipped, tz=None):
        self.name = name
        self.tz = tz
        self.credits = credits
        self.bad_rows = bad_rows
        self.counterparty = counterparty
        self.window_days = window_days
        self.skipped = skipped

    def as_dict(self):
        return {"path": self.name, "credits": len(self.credits), "bad_rows": list(self.bad_rows),
                "counterparty": self.counterparty, "window_days": self.window_days}


def bank_mapping(data, path):
    """A bank map document -> (Mapping, counterparty filter, window days)."""
    if not isinstance(data, dict):
        raise MappingError(path, "(top)", "expected a TOML document")
    data = dict(data)
    bank = data.pop("bank", {})
    if not isinstance(bank, dict) or set(bank) - {"counterparty", "window_days"}:
        raise MappingError(path, "bank", "expected a table with counterparty, window_days")
    columns = data.get("columns", {})
    for key in columns:
        if key not in BANK_COLUMNS:
            raise MappingError(path, "columns." + key, "unknown column (expected one of %s)"
                               % ", ".join(BANK_COLUMNS))
    for key in ("date", "amount"):
        if key not in columns:
            raise MappingError(path, "columns." + key, "missing (required)")
    # The statement's columns ride on the settlement columns the rules know
    # how to parse: date as a time, amount as money, the texts as identifiers.
    renamed = {"settled_at": columns["date"], "amount": columns["amount"],
               "acquirer_ref": {"fixed": "bank-statement"},
               "fee": {"fixed": "0"}, "settled_amount": {"fixed": "0"}}
    if "counterparty" in columns:
        renamed["terminal_id"] = columns["counterparty"]
    if "memo" in columns:
        renamed["rrn"] = columns["memo"]
    data["columns"] = renamed
    mapping = mapping_from_dict(data, path)
    mapping.rules = dict((k, v) for k, v in mapping.rules.items() if k in renamed)
    counterparty = bank.get("counterparty")
    if counterparty is not None and (not isinstance(counterparty, str) or not counterparty):
        raise MappingError(path, "bank.counterparty", "expected text")
    window = bank.get("window_days", 3)
    if type(window) is not int or not 0 <= window <= 31:
        raise MappingError(path, "bank.window_days", "expected an integer 0..31")
    return mapping, counterparty, window


def _day(ms, tz):
    when = EPOCH + timedelta(milliseconds=ms)
    return when.astimezone(tz).date().isoformat() if tz else when.date().isoformat()


def read_bank_statement(path, map_path):
    """The statement's credits; bad rows listed, the others still count."""
    mapping, counterparty, window = bank_mapping(read_toml(map_path),
                                                 str(map_path))
    stream = SettlementStream(path, mapping, str(path), "bank", FileContext())
    credits, bad = [], []
    for line, record in stream.records():
        if isinstance(record, Exception):
            bad.append({"line": line, "reason": str(record)})
            continue
        row = {}
        try:
            for ours in ("amount", "settled_at"):
                row[ours] = column_value(ours, mapping.rules[ours], record, mapping, None, row)
            for ours in ("terminal_id", "rrn"):     # counterparty, memo: free text
                rule = mapping.rules.get(ours)
                text = first_cell(record, rule.sources, mapping)[:MAX_TEXT] if rule else None
                row[ours] = mask_cell(text)[0] if text else None
            if row["amount"] is None or row["settled_at"] is None:
                raise RowProblem("date" if row["settled_at"] is None else "amount",
                                 "missing (required)")
        except RowProblem as exc:
            bad.append({"line": line, "reason": str(exc).replace("settled_at", "date")})
            continue
        if row["amount"] <= 0:
            continue
        text = "%s %s" % (row["terminal_id"] or "", row["rrn"] or "")
        if counterparty and counterparty not in text:
            continue
        credits.append({"line": line, "day": _day(row["settled_at"], mapping.tz),
                        "amount": row["amount"], "counterparty": row["terminal_id"],
                        "memo": row["rrn"]})
    return BankStatement(str(path), credits, bad, counterparty, window, stream.info.skipped,
                         mapping.tz)

