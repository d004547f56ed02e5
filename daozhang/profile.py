"""The merchant profile: load and validate a TOML file (CPython).

Returns a plain dict the portable core consumes (docs/SPEC.md §7,
section 1, gives the format; examples/merchant.toml is a commented one):

    {"path": str, "merchant_id": "310290058120001", "terminal_id": "SH000001",
     "mcc": "5812", "region": "2900", "timezone": "Asia/Shanghai", "currency": "CNY",
     "locale": "zh-CN",
     "settlement": {"mode": "T1", "cutoff": "23:00", "cutoff_minutes": 1380,
                    "d0_within_minutes": 120, "holidays": ["2026-10-01", ...],
                    "workdays": ["2026-10-10", ...]},
     "fees": {"tolerance": 1, "d0_surcharge": 0,
              "card_types": {"debit": {"bp": 55, "cap": 2000}, ...}}}

Consistency of the merchant number: digits 4-7 (1-indexed) of the 15-digit
merchant_id are the region and digits 8-11 the MCC.  A profile whose number
disagrees with its own `mcc` or `region` is refused (ProfileError): every
mcc_jump/region_jump verdict would otherwise depend on which of the two
the reader believes, and a number registered under a category other than
the shop's is itself the code jumping the watchdog exists to catch.
"""

import zoneinfo

from daozhang.agent.core.business_calendar import (
    is_ascii_digits, parse_date, parse_hhmm, parse_mode)
from daozhang.agent.core import merchant_ids
from daozhang.agent.core.errors import ValidationError
from daozhang.i18n import check_locale, default_locale
from daozhang.toml_tables import ConfigFileError, check_keys, check_tables, read_toml

TOP_KEYS = {"merchant_id", "terminal_id", "mcc", "region", "timezone", "currency",
            "name", "settlement", "fees", "sale_time", "locale", "merchant_ids"}
SALE_TIME_KEYS = {"days_back", "days_ahead"}
SETTLEMENT_KEYS = {"mode", "cutoff", "d0_within_minutes", "holidays", "workdays"}
FEE_KEYS = {"tolerance", "d0_surcharge"}
CARD_KEYS = {"bp", "cap"}


ProfileError = ConfigFileError   # the one error class of every config file (daozhang/toml_tables.py)


def _int(path, key, value, low=0, high=None):
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProfileError(path, key, "expected an integer, got %r" % (value,))
    if value < low or (high is not None and value > high):
        bound = "%d..%d" % (low, high) if high is not None else ">= %d" % low
        raise ProfileError(path, key, "expected %s, got %d" % (bound, value))
    return value


def _digits(path, key, value, count):
    if not isinstance(value, str) or len(value) != count or not is_ascii_digits(value):
        raise ProfileError(path, key, "expected a string of %d digits, got %r" % (count, value))
    return value


def _dates(path, key, value):
    if not isinstance(value, list):
        raise ProfileError(path, key, "expected a list of dates, got %r" % (value,))
    out = []
    for i, item in enumerate(value):
        # tomllib gives datetime.date for a bare TOML date; strings pass as they are
        text = item if isinstance(item, str) else getattr(item, "isoformat", lambda: item)()
        try:
            parse_date(text, key)
        except ValidationError:
            raise ProfileError(path, "%s[%d]" % (key, i),
                               "expected a date such as 2026-10-01, got %r" % (item,)) from None
        out.append(text)
    return sorted(set(out))


def validate_profile(data, path="<profile>"):
    """A parsed TOML table -> the profile dict; raises ProfileError."""
    check_tables(path, data, {"settlement": SETTLEMENT_KEYS, "fees": None, "sale_time": SALE_TIME_KEYS},
                 top_keys=TOP_KEYS)
    for key in ("merchant_id", "terminal_id", "mcc", "region", "timezone", "settlement", "fees"):
        if key not in data:
            raise ProfileError(path, key, "missing")
    merchant_id = _digits(path, "merchant_id", data["merchant_id"], 15)
    mcc = _digits(path, "mcc", data["mcc"], 4)
    region = _digits(path, "region", data["region"], 4)
    terminal_id = data["terminal_id"]
    if (not isinstance(terminal_id, str) or not 1 <= len(terminal_id) <= 16
            or not terminal_id.isascii() or not terminal_id.isalnum()):
        raise ProfileError(path, "terminal_id", "expected 1 to 16 letters or digits, got %r"
                           % (terminal_id,))
    if merchant_id[3:7] != region:
        raise ProfileError(path, "merchant_id", "digits 4-7 are region %s, but region is %s"
                           % (merchant_id[3:7], region))
    if merchant_id[7:11] != mcc:
        raise ProfileError(path, "merchant_id", "digits 8-11 are MCC %s, but mcc is %s"
                           % (merchant_id[7:11], mcc))
    tz = data["timezone"]
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ProfileError(path, "timezone", "expected an IANA time zone such as "
                           "Asia/Shanghai, got %r" % (tz,)) from None
    currency = data.get("currency", "CNY")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha() \
            or not currency.isupper():
        raise ProfileError(path, "currency", "expected an ISO 4217 code such as CNY, got %r"
                           % (currency,))

    # The language of the report, the display and the alerts (i18n/): the
    # merchant's, Simplified Chinese for a CNY shop unless the profile says.
    locale = data.get("locale", default_locale(currency))
    try:
        check_locale(locale)
    except ValueError as exc:
        raise ProfileError(path, "locale", str(exc)) from None

    s = data["settlement"]
    for key in ("mode", "cutoff"):
        if key not in s:
            raise ProfileError(path, "settlement." + key, "missing")
    try:
        parse_mode(s["mode"])
    except ValidationError:
        raise ProfileError(path, "settlement.mode", "expected D0, T1, T2 or Tn, got %r"
                           % (s["mode"],)) from None
    try:
        cutoff_minutes = parse_hhmm(s["cutoff"], "settlement.cutoff")
    except ValidationError:
        raise ProfileError(path, "settlement.cutoff", "expected local time HH:MM such as "
                           "23:00, got %r" % (s["cutoff"],)) from None
    if s["mode"] == "D0" and "d0_within_minutes" not in s:
        raise ProfileError(path, "settlement.d0_within_minutes", "missing (mode is D0)")
    d0 = _int(path, "settlement.d0_within_minutes", s.get("d0_within_minutes", 120), 1, 1440)
    settlement = {"mode": s["mode"], "cutoff": s["cutoff"], "cutoff_minutes": cutoff_minutes,
                  "d0_within_minutes": d0,
                  "holidays": _dates(path, "settlement.holidays", s.get("holidays", [])),
                  "workdays": _dates(path, "settlement.workdays", s.get("workdays", []))}

    f = data["fees"]
    cards = {}
    for name, table in f.items():
        if name in FEE_KEYS:
            continue
        key = "fees." + name
        if not isinstance(table, dict):
            raise ProfileError(path, key, "expected a table [%s] with bp and optional cap, "
                               "or one of tolerance, d0_surcharge" % key)
        check_keys(path, key + ".", table, CARD_KEYS)
        if "bp" not in table:
            raise ProfileError(path, key + ".bp", "missing (basis points: 55 is 0.55%)")
        entry = {"bp": _int(path, key + ".bp", table["bp"], 0, 10000), "cap": None}
        if "cap" in table:
            entry["cap"] = _int(path, key + ".cap", table["cap"])
        cards[name] = entry
    if not cards:
        raise ProfileError(path, "fees", "no card type table (expected e.g. [fees.debit])")
    fees = {"tolerance": _int(path, "fees.tolerance", f.get("tolerance", 0)),
            "d0_surcharge": _int(path, "fees.d0_surcharge", f.get("d0_surcharge", 0)),
            "card_types": cards}
    return {"path": path, "name": data.get("name", ""), "merchant_id": merchant_id,
            "merchant_ids": _merchant_ids(path, data.get("merchant_ids", {})),
            "sale_time": _sale_time(path, data.get("sale_time", {})),
            "terminal_id": terminal_id, "mcc": mcc, "region": region, "timezone": tz,
            "currency": currency, "locale": locale, "settlement": settlement, "fees": fees}


def _merchant_ids(path, table):
    """[merchant_ids]: the ids the QR channels know this shop by (SPEC 4.3):
    `wechat` its 10-digit WeChat Pay (sub-)merchant id, `alipay` its 16-digit
    Alipay PID.  A WeChat or Alipay sale may carry its channel's id instead
    of the UnionPay merchant_id; only where the profile names it."""
    if not isinstance(table, dict):
        raise ProfileError(path, "merchant_ids", "expected a table [merchant_ids]")
    check_keys(path, "merchant_ids.", table, set(merchant_ids.CHANNEL_KIND))
    out = {}
    for channel, value in sorted(table.items()):
        if merchant_ids.kind_of(value) != merchant_ids.CHANNEL_KIND[channel]:
            raise ProfileError(path, "merchant_ids." + channel, "expected %s, got %r" % (
                {"wechat": "10 digits (WeChat Pay sub-merchant id)",
                 "alipay": "16 digits starting 2088 (Alipay PID)"}[channel], value))
        out[channel] = value
    return out


def _sale_time(path, table):
    """[sale_time]: how far a sale's time may be from the terminal's clock
    (txn.time_window); beyond it the intake answers time_out_of_range."""
    return {"days_back": _int(path, "sale_time.days_back", table.get("days_back", 30), 1, 3660),
            "days_ahead": _int(path, "sale_time.days_ahead", table.get("days_ahead", 1), 0, 366)}


def load_profile(path):
    """Read and validate a merchant profile TOML file."""
    data = read_toml(path)
    return validate_profile(data, str(path))
