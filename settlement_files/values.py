"""Cell text -> values: money with a scale, a sign rule and a rounding rule;
times; identifiers.  Each raises RowProblem naming the column and the text.

docs/SPEC.md §7.9.3.  Money is signed integer minor units (fen); `scale` is
how many fraction digits one minor unit has in the file (0: the file is in
fen; 2: yuan).  More fraction digits than the scale (WeChat's 5-decimal fee)
are rounded by the column's declared rule, or refused when it says "refuse".
"""

import re
from functools import lru_cache
from datetime import datetime, timedelta, timezone

from daozhang.agent.core.business_calendar import parse_rfc3339_ms
from daozhang.agent.core.errors import ValidationError
from daozhang.settlement_files.errors import RowProblem, shown

MAX_DIGITS = 15                 # |money| < 10**15 minor units
MAX_TEXT = 64                   # identifiers: acquirer_ref, terminal_id, rrn, auth_code
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ROUNDING = ("refuse", "half_up", "half_even", "down")
_DIGITS = re.compile(r"[0-9]+\Z")
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _rounded(value, drop, rule):
    """`value` (a non-negative int) divided by 10**drop under `rule`."""
    unit = 10 ** drop
    q, r = divmod(value, unit)
    if rule == "down" or r == 0:
        return q
    twice = 2 * r
    if twice > unit or (twice == unit and (rule == "half_up" or q % 2 == 1)):
        return q + 1
    return q


def parse_money(column, raw, scale, rounding="refuse", sign_rule="plain"):
    """Signed minor units.  sign_rule "plain": '-12.50'; "dc": 'C000000001250'
    credited (+) / 'D...' debited (-); "dc_charge": D (+), C (-) for a fee."""
    sign = 1
    body = raw.replace(",", "") if "," in raw and "." in raw else raw
    if sign_rule in ("dc", "dc_charge"):
        flag, body = body[:1].upper(), body[1:]
        if flag not in ("D", "C"):
            raise RowProblem(column, "expected D or C then digits, got %s" % shown(raw))
        sign = 1 if (flag == "C") == (sign_rule == "dc") else -1
    if body[:1] in ("-", "+"):
        sign, body = sign * (-1 if body[0] == "-" else 1), body[1:]
    whole, dot, frac = body.partition(".")
    if whole == "" and dot:
        whole = "0"
    if not _DIGITS.match(whole) or (dot and not _DIGITS.match(frac)):
        want = "an integer in minor units" if scale == 0 else \
            "a decimal with up to %d fraction digits" % scale
        raise RowProblem(column, "expected %s, got %s" % (want, shown(raw)))
    if len(whole.lstrip("0")) > MAX_DIGITS:
        raise RowProblem(column, "more than %d digits: %s" % (MAX_DIGITS, shown(raw)))
    if len(frac) > scale:
        if rounding == "refuse":
            if scale == 0:
                raise RowProblem(column, "expected an integer in minor units, got %s (a "
                                 "decimal: declare the column's scale in a mapping)" % shown(raw))
            raise RowProblem(column, "%d fraction digits, the mapping's scale is %d: %s (declare "
                             "a rounding rule to accept it)" % (len(frac), scale, shown(raw)))
        value = _rounded(int(whole + frac), len(frac) - scale, rounding)
    else:
        value = int(whole + frac + "0" * (scale - len(frac)))
    if value >= 10 ** MAX_DIGITS:
        raise RowProblem(column, "more than %d digits in minor units: %s"
                         % (MAX_DIGITS, shown(raw)))
    return sign * value


@lru_cache(maxsize=4096)
def _rfc3339_ms(raw):
    """Cached: a file's settlement times repeat on every row of a batch."""
    return parse_rfc3339_ms(raw, "time")


@lru_cache(maxsize=4096)
def _wall_ms(text, fmt, tz):
    when = datetime.strptime(text, fmt)
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)   # fold=0: the rule of SPEC 7.2
    return (when - EPOCH) // timedelta(milliseconds=1)


def parse_time(column, raw, time_format, tz, year=None):
    """Unix milliseconds from RFC 3339 text (time_format None) or a strptime
    format in zone `tz`.  `year(month) -> year` supplies the year of a time
    written without one (UnionPay's MMDDhhmmss)."""
    if time_format is None:
        try:
            return _rfc3339_ms(raw)
        except ValidationError:
            raise RowProblem(column, "expected RFC 3339 time with offset such as "
                             "2027-01-04T10:00:00+08:00, got %s" % shown(raw)) from None
    text, fmt = raw, time_format
    if year is not None:
        if len(raw) < 2 or not raw[:2].isdigit():
            raise RowProblem(column, "expected a time as %r, got %s" % (time_format, shown(raw)))
        text, fmt = "%04d%s" % (year(int(raw[:2])), raw), "%Y" + time_format
    try:
        return _wall_ms(text, fmt, tz)
    except ValueError:
        raise RowProblem(column, "expected a time as %r, got %s"
                         % (time_format, shown(raw))) from None


def identifier(column, raw, limit=MAX_TEXT):
    if len(raw) > limit:
        raise RowProblem(column, "expected at most %d characters, got %d" % (limit, len(raw)))
    bad = _CONTROL.search(raw)
    if bad is not None:
        raise RowProblem(column, "control character %r in %s" % (bad.group(), shown(raw)))
    return raw


def fixed_digits(column, raw, count):
    if len(raw) != count or not _DIGITS.match(raw):
        raise RowProblem(column, "expected exactly %d digits, got %s" % (count, shown(raw)))
    return raw
