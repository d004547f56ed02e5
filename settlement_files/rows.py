"""One file record (file column -> cell text) -> one settlement row.

docs/SPEC.md §7.9.  The row is the dict agent/core/settlement/settlement_checks.py takes
(§7.4): our columns, money in signed minor units, times in Unix ms, empty
fields None.  Every cell is first cleaned of card numbers (card_mask.py):
whatever a file carries, no full card number leaves this module.
"""

from daozhang.agent.core import merchant_ids
from daozhang.settlement_files.card_mask import MAX_CARD_TEXT, mask_card_column, mask_cell
from daozhang.settlement_files.columns import COLUMNS, KINDS, MONEY, REQUIRED_COLUMNS, TIMES
from daozhang.settlement_files.errors import MappingError, RowProblem, shown
from daozhang.settlement_files.values import fixed_digits, identifier, parse_money, parse_time

_ORDER = ("kind",) + tuple(c for c in COLUMNS if c != "kind")
CHANNELS = ("card", "wechat", "alipay", "unionpay_qr")
# Joins the parts of a composite id; not a card-number separator (card_mask),
# so digits on both sides never read as one card number.
JOINER = "|"
_TEXT_COLUMNS = ("acquirer_ref", "terminal_id", "rrn", "auth_code", "order_id")


class OtherLine(Exception):
    """Internal: a line that is not a payment (a fee or payout line): the
    map's [kinds] says "other"; counted by its label, not settled."""

    def __init__(self, label):
        super().__init__(label)
        self.label = label


class FileContext:
    """What a row may take from the file as a whole: its date (from the
    name) and a settlement time for rows that carry none."""

    def __init__(self, file_date=None, settled_at=None):
        self.file_date = file_date          # (year, month, day) or None
        self.settled_at = settled_at        # Unix ms or None

    def year_for(self, month):
        """The year of an MMDD time in a file dated file_date: a December
        record in a January file belongs to the year before."""
        year, file_month = self.file_date[0], self.file_date[1]
        if month == 12 and file_month == 1:
            return year - 1
        if month == 1 and file_month == 12:
            return year + 1
        return year


def _cell(record, name, mapping):
    raw = record.get(name)
    if raw is None:
        return ""
    raw = raw.strip(mapping.strip)
    return "" if raw in mapping.na else raw


def first_cell(record, names, mapping):
    for name in names:
        raw = _cell(record, name, mapping)
        if raw:
            return raw
    return ""


def _money(rule, raw, kind, column=None):
    value = parse_money(column or rule.ours, raw, rule.scale, rule.rounding,
                        rule.sign if rule.sign in ("dc", "dc_charge") else "plain")
    if rule.sign == "negate":
        value = -value
    elif rule.sign == "kind" and kind in ("refund", "void", "reversal"):
        value = -abs(value)
    return value


def column_value(ours, rule, record, mapping, ctx, row):
    """The parsed value of our column `ours` (None when empty)."""
    kind = row.get("kind")
    if rule.total is not None:
        parts = [(n, _cell(record, n, mapping)) for n in rule.total]
        if not any(raw for _, raw in parts):
            return None
        return sum(_money(rule, raw, kind, "%s (%s)" % (ours, n)) for n, raw in parts if raw)
    if rule.credit or rule.debit:
        credit = _cell(record, rule.credit, mapping) if rule.credit else ""
        debit = _cell(record, rule.debit, mapping) if rule.debit else ""
        if credit and debit:
            raise RowProblem(ours, "both %r and %r are filled" % (rule.credit, rule.debit))
        if credit:
            return abs(_money(rule, credit, kind))
        return -abs(_money(rule, debit, kind)) if debit else None
    if rule.join is not None:
        raw = JOINER.join(p for p in (_cell(record, n, mapping) for n in rule.join) if p)
    elif rule.date is not None:
        date = _cell(record, rule.date, mapping)
        clock = _cell(record, rule.time, mapping) if rule.time else ""
        if clock and date.endswith(" 00:00:00"):
            date = date[:-9]            # a spreadsheet date cell read as a datetime
        raw = (date + " " + clock).strip() if date else ""
    elif rule.fixed is not None:
        raw = rule.fixed
    elif len(rule.sources) == 1 and not rule.by_kind:
        raw = _cell(record, rule.sources[0], mapping)
    else:
        raw = _cell(record, rule.by_kind[kind], mapping) if kind in rule.by_kind else ""
        raw = raw or first_cell(record, rule.sources, mapping)
    if raw == "":
        return None
    return parse_field(ours, raw, mapping, rule, kind, ctx)


def parse_field(ours, raw, mapping, rule, kind=None, ctx=None):
    """One non-empty trimmed cell -> its value; raises RowProblem."""
    if ours in MONEY:
        return _money(rule, raw, kind)
    if ours in TIMES:
        year = None
        if mapping.year == "file_date":
            if ctx is None or ctx.file_date is None:
                raise RowProblem(ours, "the time has no year and the file name no date")
            year = ctx.year_for
        return parse_time(ours, raw, rule.time_format, mapping.tz, year)
    if ours == "merchant_id":
        # UnionPay 15 digits, WeChat Pay 10, Alipay PID 16 (SPEC 4.3): none can be a card.
        if merchant_ids.kind_of(raw) is None:
            raise RowProblem(ours, "expected %s, got %s" % (merchant_ids.WHAT, shown(raw)))
        return raw
    if ours in ("mcc", "region"):
        return fixed_digits(ours, raw, 4)
    if ours in ("trace_no", "batch_no"):
        return fixed_digits(ours, raw.zfill(6) if raw.isdigit() else raw, 6)
    if ours == "kind":
        value = mapping.kinds.get(raw, raw)
        if value.startswith("other:"):
            raise OtherLine(value[6:])
        if value not in KINDS:
            raise RowProblem(ours, "expected one of %s%s, got %s" % (
                "|".join(KINDS), " or a [kinds] entry" if mapping.kinds else "", shown(raw)))
        return value
    if ours == "channel":
        if raw not in CHANNELS:
            raise RowProblem(ours, "expected one of %s, got %s" % ("|".join(CHANNELS), shown(raw)))
        return raw
    if ours == "card":
        # Never echo a card field: it might hold a full card number.
        if len(raw) > MAX_CARD_TEXT:
            raise RowProblem(ours, "expected a masked card of at most %d characters, got %d"
                             % (MAX_CARD_TEXT, len(raw)))
        return mask_card_column(raw)
    return identifier(ours, raw)


# Our columns whose text is an identifier for the card rule (long digit runs pass).
IDENTIFIER_COLUMNS = ("acquirer_ref", "order_id", "rrn")


def _masked_record(record, cells):
    """The cells a map reads, cleaned of card numbers; the columns where one
    was found.  `cells`: file column -> True (an identifier), False (free
    text) or None (a card column: its rule cuts it)."""
    found = []
    out = {}
    for name, is_identifier in cells.items():
        raw = record.get(name)
        if raw and is_identifier is not None:
            raw, hit = mask_cell(raw, is_identifier)
            if hit:
                found.append(name)
        out[name] = raw
    return out, found


def card_columns(mapping):
    """File column -> how the card rule reads it (see _masked_record)."""
    cells = {}
    for ours, rule in mapping.rules.items():
        for name in rule.file_columns():
            if ours == "card":
                cells[name] = None
            elif cells.get(name, True) is not None:
                cells[name] = cells.get(name, True) and ours in IDENTIFIER_COLUMNS
    return cells


def plan_for(mapping, header=None):
    """(our column, rule or None) in evaluation order; a rule none of whose
    file columns is in the header is None (the column is absent), decided
    once per file, not once per row."""
    plan = []
    for ours in _ORDER:
        rule = mapping.rules.get(ours)
        if (rule is not None and header is not None and rule.fixed is None
                and rule.value is None and not set(rule.file_columns()) & header):
            rule = None
        plan.append((ours, rule))
    return plan


def row_from_record(record, mapping, ctx, cells=None, plan=None):
    """(row, columns where a card number was masked); raises RowProblem."""
    record, found = _masked_record(record, card_columns(mapping) if cells is None else cells)
    row = {}
    computed = []
    for ours, rule in plan or plan_for(mapping):
        if rule is None:
            row[ours] = None
        elif rule.value is not None:
            computed.append((ours, rule))
        else:
            row[ours] = column_value(ours, rule, record, mapping, ctx, row)
    for ours, rule in computed:
        a, op, b = rule.value
        if row.get(a) is None or row.get(b) is None:
            row[ours] = None
        else:
            row[ours] = row[a] - row[b] if op == "-" else row[a] + row[b]
    if row["settled_at"] is None and ctx is not None:
        row["settled_at"] = ctx.settled_at
    for ours in REQUIRED_COLUMNS:
        if row[ours] is None:
            raise RowProblem(ours, "missing (required)")
    for ours in _TEXT_COLUMNS:         # what a join or a fixed text made, checked too
        if row[ours] is not None:
            row[ours], hit = mask_cell(row[ours], ours in IDENTIFIER_COLUMNS)
            if hit and ours not in found:
                found.append(ours)
    return row, found


def check_fixed_values(mapping, path):
    """Fixed texts parse under their column's rule (checked once, at load)."""
    for ours, rule in mapping.rules.items():
        if rule.fixed is None:
            continue
        try:
            parse_field(ours, rule.fixed, mapping, rule, None, None)
        except RowProblem as exc:
            raise MappingError(path, "fixed." + ours, str(exc)) from None
