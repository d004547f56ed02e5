"""The transaction JSON: validation before anything reaches a disk (SPEC 4).

`validate(obj) -> dict` returns the canonical payload to journal (record type
1) or raises:

- PaymentDataRefused (code pan_refused, cvv_refused, track_refused,
  card_not_masked) when any key or value, known field or not, carries a full
  card number, a CVV or track data.  This scan runs FIRST, over the whole
  object, so a PAN hidden in an unknown field is refused as a PAN and never
  merely reported as "unknown field";
- ValidationError (code missing_field, unknown_field, wrong_type, bad_format,
  ...) naming the field, for everything else.

No message ever echoes a submitted value: a value may be card data, and
messages end up in logs and on POS screens.

Identifier fields have strict formats of their own (4.3): rrn (12), auth_code
(6) and mcc (4) are too short to hold a card number, and merchant_id (15
digits, or a WeChat Pay 10 / Alipay 16 starting 2088 on such a sale:
merchant_ids.py) is exempt by rule: a Luhn-valid merchant number is an
identifier, not a PAN.  Every other string, pos_txn_id and terminal_id included, is
scanned as free text.

Portable: CPython and MicroPython (no datetime; hand-written scanners).  On
CPython one precompiled regular expression first proves the common case
clean: it matches everything the scanners could refuse (and more), so a
transaction it finds nothing in needs no scanning, and one it flags is
scanned exactly as on MicroPython.  The rules live in the scanners only.
"""

import sys

from daozhang.agent.core import card_data
from daozhang.agent.core import merchant_ids
from daozhang.agent.core.business_calendar import parse_rfc3339_ms, parse_rfc3339_parts
from daozhang.agent.core.errors import PaymentDataRefused, ValidationError

KINDS = ("sale", "refund", "void", "reversal", "preauth_completion")
NEEDS_ORIGINAL = ("refund", "void", "reversal")
MAX_AMOUNT = 999999999999          # 12 digits: an amount can never look like a PAN
MAX_TEXT = 256                     # free-text fields, in characters
MAX_ID = 64                        # pos_txn_id, original_pos_txn_id
DAY_MS = 86400000
DAYS_BACK = 30                     # default window around the terminal's clock
DAYS_AHEAD = 1

# ISO 4217 alphabetic codes in use (2024 list, plus the fund codes).
CURRENCIES = frozenset((
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB "
    "BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC "
    "CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF "
    "GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF "
    "KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU "
    "MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR "
    "PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP "
    "STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU "
    "UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD "
    "XPF XPT XSU XTS XUA YER ZAR ZMW ZWG ZWL").split())

# Field names that only ever carry sensitive authentication data.
_CVV_NAMES = frozenset(("cvv", "cvv2", "cvc", "cvc2", "cav2", "cid", "csc", "cvn", "cvd",
                        "security_code", "card_security_code", "card_verification_value",
                        "card_verification_code", "verification_code"))
_TRACK_NAMES = frozenset(("track", "track1", "track2", "track3", "track_data", "track1_data",
                          "track2_data", "magstripe", "magnetic_stripe", "equivalent_data"))
_PAN_NAMES = frozenset(("pan", "card_number", "cardnumber", "card_no", "full_card",
                        "full_pan", "account_number", "primary_account_number"))
_DIGITS = "0123456789"
_ALNUM = _DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_CHARS = _ALNUM + "._:-"
_MASK = "*Xx"
_CARD_SEPARATORS = " -"
_CARD_CHARS = _DIGITS + _MASK + _CARD_SEPARATORS
# Fields whose long digit runs are identifiers (card_data's identifier mode).
_ID_FIELDS = ("pos_txn_id", "original_pos_txn_id")
# Text fields a POS fills freely: a number split across two of them is one.
# (time, card, kind... have formats no digit run can cross into.)
_SPLIT_FIELDS = _ID_FIELDS + ("note", "operator", "card_type", "terminal_id")

luhn_ok = card_data.luhn_ok          # kept for the callers that test with it


# --- payment data (SPEC 4.4): the rule is agent/core/card_data.py ------------

_MESSAGES = {
    "track_refused": "track data is refused; it must never leave the card reader",
    "pan_refused": "a full card number (PAN) is refused; send only the masked number",
    "cvv_refused": "a card verification code (CVV/CVC) is refused",
}


def _scan_text(field, text, identifier=False):
    code = card_data.card_data_code(text, identifier)
    if code is not None:
        raise PaymentDataRefused(field, _MESSAGES[code], code)


def _scan(field, value, depth):
    """Refuse payment data anywhere in `value`, whatever its key or type."""
    if depth > 8:
        raise ValidationError(field, "nested deeper than 8 levels", "bad_format")
    if isinstance(value, str):
        _scan_text(field, value, depth == 0 and field in _ID_FIELDS)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if card_data.contains_card_number(str(-value if value < 0 else value)):
            raise PaymentDataRefused(field, "a number shaped like a card number is refused",
                                     "pan_refused")
    elif isinstance(value, dict):
        for key in value:
            name = key if isinstance(key, str) else "?"
            where = field + "." + name if field else name
            if isinstance(key, str):
                _scan_key(where, key)
            _scan(where, value[key], depth + 1)
    elif isinstance(value, (list, tuple)):
        for i in range(len(value)):
            _scan(field + "[" + str(i) + "]", value[i], depth + 1)


def _scan_key(where, key):
    low = key.lower().replace("-", "_")
    if low in _CVV_NAMES:
        raise PaymentDataRefused(where, "a card verification code field is refused", "cvv_refused")
    if low in _TRACK_NAMES:
        raise PaymentDataRefused(where, "a track data field is refused", "track_refused")
    if low in _PAN_NAMES:
        raise PaymentDataRefused(where, "a full card number field is refused; use `card` with "
                                 "the masked number", "pan_refused")
    # The key itself may be the card data: never echo it as the field name.
    _scan_text(where[:len(where) - len(key)] + "<key>", key)


def refuse_payment_data(obj):
    """Raise PaymentDataRefused if anything in `obj` is card data."""
    _scan("", obj, 0)


def _refuse_split_numbers(obj):
    """A card number split across two scanned text fields (the tail of one
    followed by the head of another, in either order) is refused too.

    Cheap when nothing can join: only a field starting with a digit or a
    separator has a head, and with no head there is no pair to scan."""
    heads = []
    for key in _SPLIT_FIELDS:
        value = obj.get(key)
        if type(value) is str and value and _joins(value[0]):
            head = card_data.edge_digits(value, key in _ID_FIELDS)[0]
            if head:
                heads.append((key, head))
    if not heads:
        return
    for a in _SPLIT_FIELDS:
        value = obj.get(a)
        if type(value) is not str or not value or not _joins(value[-1]):
            continue
        tail = card_data.edge_digits(value, a in _ID_FIELDS)[1]
        for b, head in heads:
            if tail and a != b and len(tail) + len(head) >= card_data.MIN_PAN \
                    and card_data.contains_card_number(tail + head):
                raise PaymentDataRefused(a + "+" + b, "a full card number (PAN) split across "
                                         "two fields is refused", "pan_refused")


def _joins(ch):
    return card_data.digit_value(ch) >= 0 or ch in card_data.SEPARATORS


# --- the CPython pre-filter -------------------------------------------------
#
# Each test is a superset of one rule, so text that passes them all holds
# nothing card_data could refuse:
#   13 digits chained by separators  a card number (ASCII or full-width);
#   12 digits, [=Dd], 4 digits       the track 2 rule ('=' ends a chain);
#   '^' anywhere                     the track 1 name field;
#   '%b' in the lower-cased text     the track 1 start sentinel (%B or %b);
#   a CVV word, [ :=#-]*, 3 digits   contains_cvv, on the same lower-cased text.
# Separate searches, not one alternation: sre tries every alternative at
# every position, and this runs on every transaction.  CPython only:
# MicroPython's re has no counted repeats, and a pre-filter that silently
# under-matched would let a PAN through.
if sys.implementation.name == "cpython":
    import re
    _chain13 = card_data.might_hold_card_number
    _track2 = re.compile("[0-9\uff10-\uff19]{12}[=Dd][0-9\uff10-\uff19]{4}").search
    _cvv_word = re.compile(r"(?:cvv2|cvc2|cvv|cvc|cav2|csc|cid|security code)[ :=#-]*[0-9]{3}").search
else:
    _chain13 = _track2 = _cvv_word = None


def _surely_clean(obj):
    """True only when the exact scan of `obj` (validate's first loop) cannot
    raise: every key a known field (field names hold no card data), every
    scanned value a plain string, and the pre-filter silent on them all.
    False means "scan exactly", not "refused"."""
    if _chain13 is None:
        return False
    texts = []
    for key in obj:
        if type(key) is not str:
            return False
        scanned = _SCANNED.get(key)
        if scanned is None:
            return False
        if scanned:
            value = obj[key]
            if type(value) is not str:
                return False
            texts.append(value)
    # '\n' is in none of the classes above: no match spans two fields.
    text = "\n".join(texts)
    if "^" in text or _chain13(text) or _track2(text) is not None:
        return False
    low = text.lower()
    return "%b" not in low and _cvv_word(low) is None


# --- field formats (SPEC 4.3) -----------------------------------------------

def _all_in(text, chars):
    # strip() removes every leading and trailing char in `chars`: nothing is
    # left exactly when all of `text` is made of them (C speed, portable).
    return not text.strip(chars)


def rfc3339_ok(text):
    """YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), ranges checked
    (the core's one parser, strict: business_calendar.parse_rfc3339_parts)."""
    try:
        parse_rfc3339_parts(text, "time", strict=True)
    except ValidationError:
        return False
    return True


def _card(field, value):
    """Canonical masked card: digits and '*', separators dropped (4.4)."""
    if not _all_in(value, _CARD_CHARS):
        raise ValidationError(field, "only digits, '*' or 'X' and separators are allowed",
                              "bad_format")
    plain = value.replace(" ", "").replace("-", "").replace("X", "*").replace("x", "*")
    if not (12 <= len(plain) <= 19):
        raise ValidationError(field, "expected a masked card number of 12-19 positions, got %d"
                              % len(plain), "bad_format")
    if "*" not in plain:
        # Unmasked: a card number whether or not its check digit is right.
        raise PaymentDataRefused(field, "a full card number (PAN) is refused; send only the "
                                 "masked number", "pan_refused")
    middle = plain[6:len(plain) - 4]
    if not _all_in(middle, "*"):
        raise PaymentDataRefused(field, "the card number must be masked: at most the first 6 "
                                 "and last 4 digits in clear", "card_not_masked")
    return plain


def _pattern(field, value, chars, low, high, code, what):
    if not (low <= len(value) <= high) or not _all_in(value, chars):
        raise ValidationError(field, "expected " + what, code)
    return value


def _id(field, value):
    if not (1 <= len(value) <= MAX_ID) or not _all_in(value, _ID_CHARS) or value[0] not in _ALNUM:
        raise ValidationError(field, "expected 1-%d of A-Z a-z 0-9 . _ : - starting with a "
                              "letter or digit" % MAX_ID, "bad_format")
    return value


def _merchant_id(field, value):
    # UnionPay's 15 digits, WeChat Pay's 10, Alipay's 16 (merchant_ids.py); which
    # one a sale may carry depends on its channel (_check_fields).
    if merchant_ids.kind_of(value) is None:
        raise ValidationError(field, "expected " + merchant_ids.WHAT, "bad_merchant_id")
    return value


def _kind(field, value):
    if value not in KINDS:
        raise ValidationError(field, "expected one of " + " | ".join(KINDS), "bad_kind")
    return value


# The last sale time _time parsed, and its Unix ms: the time window check
# right after reads it instead of parsing the text again (per sale on the
# intake path).  One tuple, replaced whole: another thread's validate can only
# make the identity test below fail, never pair a text with another's time.
_last_time = (None, 0)


def _time(field, value):
    global _last_time
    try:
        seconds, millis = parse_rfc3339_parts(value, "time", strict=True)
    except ValidationError:
        raise ValidationError(field, "expected RFC 3339 with an offset, e.g. "
                              "2026-11-26T09:30:00+08:00", "bad_time") from None
    _last_time = (value, seconds * 1000 + millis)
    return value


def _amount(field, value):
    if not (1 <= value <= MAX_AMOUNT):
        raise ValidationError(field, "expected a positive integer of minor units, at most "
                              "%d" % MAX_AMOUNT, "bad_amount")
    return value


def _currency(field, value):
    if value not in CURRENCIES:
        raise ValidationError(field, "expected an ISO 4217 code such as CNY", "unknown_currency")
    return value


def _card_type(field, value):
    ok = 1 <= len(value) <= 32 and value[0] in "abcdefghijklmnopqrstuvwxyz"
    return _pattern(field, value if ok else "", "abcdefghijklmnopqrstuvwxyz0123456789_", 1, 32,
                    "bad_format", "a lower-case name such as debit or credit")


def _settlement(field, value):
    ok = value == "D0" or (len(value) in (2, 3) and value[0] == "T" and value[1] in "123456789"
                           and _all_in(value[1:], _DIGITS))
    if not ok:
        raise ValidationError(field, "expected D0, T1, T2 ... T99", "bad_settlement")
    return value


CHANNELS = ("card", "wechat", "alipay", "unionpay_qr")
# A QR payment carries no card, RRN or auth code.
_QR_OPTIONAL = ("card", "auth_code", "rrn")


def _one_of(field, value, allowed):
    if value not in allowed:
        raise ValidationError(field, "expected one of " + " | ".join(allowed), "bad_format")
    return value


def _text(field, value):
    if len(value) > MAX_TEXT:
        raise ValidationError(field, "expected at most %d characters, got %d" % (MAX_TEXT, len(value)),
                              "too_long")
    return value


# field -> (type, checker). Every field is a string except amount.
FIELDS = {
    "kind": (str, _kind),
    "pos_txn_id": (str, _id),
    "time": (str, _time),
    "amount": (int, _amount),
    "currency": (str, _currency),
    "card": (str, _card),
    "card_type": (str, _card_type),
    "auth_code": (str, lambda f, v: _pattern(f, v, _ALNUM, 6, 6, "bad_auth_code",
                                              "6 letters or digits")),
    "rrn": (str, lambda f, v: _pattern(f, v, _ALNUM, 12, 12, "bad_rrn", "12 letters or digits")),
    "merchant_id": (str, _merchant_id),
    "terminal_id": (str, lambda f, v: _pattern(f, v, _ALNUM, 1, 16, "bad_terminal_id",
                                                "1-16 letters or digits")),
    "mcc": (str, lambda f, v: _pattern(f, v, _DIGITS, 4, 4, "bad_mcc", "4 digits as text")),
    "settlement": (str, _settlement),
    "original_pos_txn_id": (str, _id),
    "operator": (str, _text),
    "note": (str, _text),
    # The POS trace number (凭证号 / 系统跟踪号) and batch (批次号), as settlement
    # files print them, and the payment channel (a QR payment's merchant order
    # number is its pos_txn_id): matching keys for settlement rows (SPEC 7.4).
    "trace_no": (str, lambda f, v: _pattern(f, v, _DIGITS, 6, 6, "bad_format", "6 digits")),
    "batch_no": (str, lambda f, v: _pattern(f, v, _DIGITS, 6, 6, "bad_format", "6 digits")),
    "channel": (str, lambda f, v: _one_of(f, v, CHANNELS)),
}
REQUIRED = ("kind", "pos_txn_id", "time", "amount", "currency", "card", "card_type",
            "merchant_id", "terminal_id", "mcc", "settlement")
# auth_code and rrn exist once an acquirer approved the sale.
REQUIRED_FOR_KIND = {
    "sale": ("auth_code", "rrn"),
    "preauth_completion": ("auth_code", "rrn"),
    "refund": ("original_pos_txn_id",),
    "void": ("original_pos_txn_id",),
    "reversal": ("original_pos_txn_id",),
}
# Identifier formats too short or too strict to hold a PAN; exempt from the
# free-text scan (merchant_id: a 15-digit merchant number is not a card).
# terminal_id (up to 16 characters, as the profile allows) is scanned.
_IDENTIFIERS = ("merchant_id", "rrn", "auth_code", "mcc", "amount")
# known field -> scanned as free text?  (The pre-filter's view of FIELDS.)
_SCANNED = {}
for _name in FIELDS:
    _SCANNED[_name] = _name not in _IDENTIFIERS


def _type_name(t):
    return "integer" if t is int else "string"


def time_window(profile=None):
    """(ms back, ms ahead) a sale's time may be from the terminal's clock:
    the profile's [sale_time] days_back / days_ahead, else 30 and 1 days."""
    table = (profile or {}).get("sale_time") or {}
    return (table.get("days_back", DAYS_BACK) * DAY_MS, table.get("days_ahead", DAYS_AHEAD) * DAY_MS)


def validate(obj, now_ms=None, window=None):
    """Check a decoded transaction JSON object; return the canonical payload.

    With `now_ms` (the terminal's clock, Unix ms) a sale whose time is more
    than `window` = (ms back, ms ahead) from it, time_window() by default,
    is refused (time_out_of_range).  Without it the time is checked for
    form only (tools re-reading what an intake already accepted)."""
    if not isinstance(obj, dict):
        raise ValidationError("", "a transaction must be a JSON object", "not_an_object")
    # Payment data first, over everything except the strict identifiers.
    if not _surely_clean(obj):
        _refuse_payment_fields(obj)
    _refuse_split_numbers(obj)
    out = _check_fields(obj)
    if now_ms is not None:
        _check_time_window(out["time"], now_ms, window or time_window())
    return out


def _check_time_window(text, now_ms, window):
    parsed, at = _last_time
    if parsed is not text:
        at = parse_rfc3339_ms(text, "time")
    back, ahead = window
    if at < now_ms - back or at > now_ms + ahead:
        raise ValidationError("time", "more than %d day(s) before or %d day(s) after the "
                              "terminal's clock; check the POS clock"
                              % (back // DAY_MS, ahead // DAY_MS), "time_out_of_range")


def _refuse_payment_fields(obj):
    for key in obj:
        if not isinstance(key, str):
            raise ValidationError("", "field names must be strings", "wrong_type")
        if key in _IDENTIFIERS:
            continue
        _scan_key(key, key)
        _scan(key, obj[key], 0)


def _check_fields(obj):
    out = {}
    for key in sorted(obj):
        spec = FIELDS.get(key)
        if spec is None:
            raise ValidationError(key if len(key) <= 40 else key[:40], "unknown field",
                                  "unknown_field")
        value = obj[key]
        want, check = spec
        if isinstance(value, bool) or not isinstance(value, want):
            raise ValidationError(key, "expected " + _type_name(want), "wrong_type")
        out[key] = check(key, value)
    required = REQUIRED
    if "kind" in out:
        required = required + REQUIRED_FOR_KIND[out["kind"]]
    if out.get("channel", "card") != "card":
        required = tuple(k for k in required if k not in _QR_OPTIONAL)
    for key in required:
        if key not in out:
            raise ValidationError(key, "missing", "missing_field")
    why = merchant_ids.problem(out["merchant_id"], out.get("channel", "card"))
    if why is not None:
        raise ValidationError("merchant_id", why, "bad_merchant_id")
    if "original_pos_txn_id" in out:
        if out["kind"] == "sale":
            raise ValidationError("original_pos_txn_id", "a sale has no original",
                                  "original_forbidden")
        if out["original_pos_txn_id"] == out["pos_txn_id"]:
            raise ValidationError("original_pos_txn_id", "must differ from pos_txn_id",
                                  "bad_format")
    return out

