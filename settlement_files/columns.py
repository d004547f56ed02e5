"""How each of our columns is taken from a file record: one column rule each.

docs/SPEC.md §7.9.3.  A rule names where the text comes from and how it
becomes a value:

    from     = "交易金额" or ["退款金额", "应结订单金额"]  first non-empty of these
    by_kind  = {refund = "退款金额"}     another column for rows of that kind
    sum      = ["Commission (NC)", ...]  the sum of these money columns
    credit / debit = column names        credit positive, debit negative (Adyen)
    join     = ["支付宝交易号", "退款批次号"]  non-empty parts joined by "|"
    date + time = column names           one time from a date and a time column
    value    = "amount - fee"            computed from our own columns
    fixed    = "text"                    the same text on every row
    scale, round, sign, format           per column (money and times)

Rules are evaluated in COLUMNS order with `kind` first (by_kind and the
"kind" sign rule read it), and computed `value` rules last.
"""

from daozhang.settlement_files.errors import MappingError

COLUMNS = ("acquirer_ref", "merchant_id", "terminal_id", "rrn", "auth_code", "txn_time", "kind",
           "card", "amount", "fee", "settled_amount", "settled_at", "mcc", "region",
           "order_id", "trace_no", "batch_no", "channel")
REQUIRED_COLUMNS = ("acquirer_ref", "amount", "fee", "settled_amount", "settled_at")
MONEY = ("amount", "fee", "settled_amount")
TIMES = ("txn_time", "settled_at")
KINDS = ("sale", "refund", "void", "reversal", "preauth_completion")
SIGN_RULES = ("plain", "negate", "kind", "dc", "dc_charge")
ROUND_RULES = ("refuse", "half_up", "half_even", "down")
MAX_SCALE = 8
_KEYS = {"from", "by_kind", "sum", "credit", "debit", "join", "date", "time", "value", "fixed",
         "scale", "round", "sign", "format"}


class ColumnRule:
    """One column's rule (attributes as in the module docstring; None unset)."""

    def __init__(self, ours, sources=(), by_kind=None, total=None, credit=None, debit=None,
                 join=None, date=None, time=None, value=None, fixed=None, scale=None,
                 rounding=None, sign="plain", time_format=None):
        self.ours = ours
        self.sources = tuple(sources)
        self.by_kind = dict(by_kind or {})
        self.total = tuple(total) if total else None
        self.credit, self.debit = credit, debit
        self.join = tuple(join) if join else None
        self.date, self.time = date, time
        self.value = value
        self.fixed = fixed
        self.scale = scale
        self.rounding = rounding
        self.sign = sign
        self.time_format = time_format

    def file_columns(self):
        """Every file column this rule reads (for the header check)."""
        names = list(self.sources) + list(self.by_kind.values())
        for group in (self.total, self.join):
            names += list(group or ())
        names += [n for n in (self.credit, self.debit, self.date, self.time) if n]
        return names


def _names(path, key, value, low=1):
    if isinstance(value, str):
        value = [value]
    if (not isinstance(value, list) or len(value) < low
            or not all(isinstance(v, str) and 0 < len(v) <= 200 for v in value)):
        raise MappingError(path, key, "expected a column name or a list of them, got %r"
                           % (value,))
    return [v.strip() for v in value]


def _check_value(path, key, text):
    parts = text.split()
    ok = (len(parts) == 3 and parts[1] in "+-" and parts[0] in MONEY and parts[2] in MONEY)
    if not ok:
        raise MappingError(path, key, "expected 'X - Y' or 'X + Y' over amount, fee, "
                           "settled_amount, got %r" % text)
    return tuple(parts)


def rule_from_toml(path, ours, spec, defaults):
    """A [columns] entry (a name, a list of names or a table) -> ColumnRule."""
    key = "columns." + ours
    if ours not in COLUMNS:
        raise MappingError(path, key, "unknown column (expected one of %s)" % ", ".join(COLUMNS))
    if isinstance(spec, (str, list)):
        spec = {"from": spec}
    if not isinstance(spec, dict):
        raise MappingError(path, key, "expected a column name, a list or a table")
    for k in spec:
        if k not in _KEYS:
            raise MappingError(path, "%s.%s" % (key, k), "unknown key (expected one of %s)"
                               % ", ".join(sorted(_KEYS)))
    rule = ColumnRule(ours, sign=spec.get("sign", "plain"))
    if "from" in spec:
        rule.sources = tuple(_names(path, key + ".from", spec["from"]))
    by_kind = spec.get("by_kind", {})
    if not isinstance(by_kind, dict) or any(k not in KINDS for k in by_kind):
        raise MappingError(path, key + ".by_kind", "expected a table kind = column (kinds: %s)"
                           % "|".join(KINDS))
    rule.by_kind = dict((k, _names(path, key + ".by_kind." + k, v)[0]) for k, v in by_kind.items())
    for name in ("sum", "join"):
        if name in spec:
            setattr(rule, "total" if name == "sum" else "join",
                    tuple(_names(path, "%s.%s" % (key, name), spec[name])))
    for name in ("credit", "debit", "date", "time"):
        if name in spec:
            setattr(rule, name, _names(path, "%s.%s" % (key, name), spec[name])[0])
    if "value" in spec:
        if ours not in MONEY:
            raise MappingError(path, key + ".value", "only money columns can be computed")
        rule.value = _check_value(path, key + ".value", spec["value"])
    if "fixed" in spec:
        if not isinstance(spec["fixed"], str) or not 0 < len(spec["fixed"]) <= 64:
            raise MappingError(path, key + ".fixed", "expected text of 1 to 64 characters")
        rule.fixed = spec["fixed"].strip()
    if rule.sign not in SIGN_RULES:
        raise MappingError(path, key + ".sign", "expected one of %s, got %r"
                           % ("|".join(SIGN_RULES), rule.sign))
    scale = spec.get("scale", defaults.get("scale"))
    if scale is not None and (type(scale) is not int or not 0 <= scale <= MAX_SCALE):
        raise MappingError(path, key + ".scale", "expected an integer 0..%d (0: fen, 2: yuan), "
                           "got %r" % (MAX_SCALE, scale))
    rule.scale = scale
    rule.rounding = spec.get("round", defaults.get("round", "refuse"))
    if rule.rounding not in ROUND_RULES:
        raise MappingError(path, key + ".round", "expected one of %s, got %r"
                           % ("|".join(ROUND_RULES), rule.rounding))
    rule.time_format = spec.get("format")
    if rule.time_format is not None and (not isinstance(rule.time_format, str)
                                         or "%" not in rule.time_format):
        raise MappingError(path, key + ".format", "expected a strptime format such as "
                           "'%%Y-%%m-%%d %%H:%%M:%%S', got %r" % (rule.time_format,))
    if not (rule.sources or rule.by_kind or rule.total or rule.credit or rule.debit or rule.join
            or rule.date or rule.value or rule.fixed is not None):
        raise MappingError(path, key, "says nowhere to take the column from (from, sum, "
                           "credit/debit, join, date/time, value or fixed)")
    return rule
