"""The one card-data rule (docs/SPEC.md §4.4): what counts as a card
number, track data or a CVV in text that came from outside.

A **card number** is a window of 13-19 digits that starts with an issuer
prefix of a card scheme (ISO/IEC 7812: 4 Visa; 51-55 and 2221-2720
Mastercard; 62 and 81 UnionPay; 34, 37 Amex; 3528-3589 JCB; 300-305, 36,
38-39 Diners; 6011, 644-649, 65 Discover) and passes Luhn.  Its digits may
be ASCII or full-width (as Chinese input methods type them) and may be
separated by any run of SEPARATORS (spaces, NBSP, - . _ : / and their
full-width forms).  A line break, a letter or any other character ends the
chain of digits.

In **free text** every window of every chain is tried.  In an **identifier**
(pos_txn_id, order numbers, rrn, acquirer_ref) a run of more than 19
contiguous digits is an identifier (28-digit WeChat Pay and Alipay numbers,
timestamp order ids) and passes; it also ends the chain.  Shorter runs are
scanned as in free text, so a card number with a digit or a CVV appended
(17-19 digits) is still one.

    find_card_number(text, identifier=False) -> (start, end) char span | None
    mask_card_numbers(text, identifier=False) -> (masked text, count)
    card_data_code(text, identifier=False) -> None | "pan_refused" | ...

Cost: linear in the text (prefix sums make each window's Luhn O(1)).
Portable: CPython and MicroPython (a hand scan, no `re`; strings are walked
with `for`, never indexed, as MicroPython indexes str in O(n)).
"""

import sys

MIN_PAN = 13
MAX_PAN = 19
KEEP_FIRST = 6
KEEP_LAST = 4

SEPARATORS = (" \t\u00a0\u2007\u2009\u202f\u3000-._:/"
              "\uff0d\uff0e\uff3f\uff1a\uff0f")
_FULLWIDTH_ZERO = 0xFF10

# Words that introduce a CVV in free text ("cvv 123", "CVC2: 4567").
_CVV_WORDS = ("cvv2", "cvc2", "cvv", "cvc", "cav2", "csc", "cid", "security code")
_ASCII_DIGITS = "0123456789"
_ALNUM = _ASCII_DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def digit_value(ch):
    """0-9 for an ASCII or full-width digit, else -1."""
    o = ord(ch)
    if 48 <= o <= 57:
        return o - 48
    if _FULLWIDTH_ZERO <= o <= _FULLWIDTH_ZERO + 9:
        return o - _FULLWIDTH_ZERO
    return -1


def scheme_prefix(d, p):
    """True when digits d[p:] start with an issuer prefix (needs 4 digits)."""
    one = d[p]
    if one == 4:
        return True
    two = one * 10 + d[p + 1]
    if two in (62, 81, 34, 37, 36, 38, 39, 65) or 51 <= two <= 55:
        return True
    three = two * 10 + d[p + 2]
    if 300 <= three <= 305 or 644 <= three <= 649:
        return True
    four = three * 10 + d[p + 3]
    return 2221 <= four <= 2720 or 3528 <= four <= 3589 or four == 6011


def luhn_ok(digits):
    """Luhn check of a str of ASCII digits."""
    total = 0
    double = False
    for i in range(len(digits) - 1, -1, -1):
        d = ord(digits[i]) - 48
        if double:
            d *= 2
            if d > 9:
                d -= 9
        total += d
        double = not double
    return total % 10 == 0


def _luhn_sums(d):
    """Prefix sums s[q][k]: digits before k, doubled where index % 2 == q.

    A window d[p:e] passes Luhn when its digits at odd distance from the
    last one (index % 2 == e % 2) are doubled: s[e % 2][e] - s[e % 2][p]
    is then its checksum."""
    s0 = [0]
    s1 = [0]
    for k in range(len(d)):
        v = d[k]
        dbl = v * 2 - 9 if v > 4 else v * 2
        if k % 2 == 0:
            s0.append(s0[-1] + dbl)
            s1.append(s1[-1] + v)
        else:
            s0.append(s0[-1] + v)
            s1.append(s1[-1] + dbl)
    return (s0, s1)


def _windows(d):
    """Yield (p, length) of card numbers in the digit list `d`, leftmost first,
    the longest at each start; scanning resumes at its last KEEP_LAST digits,
    so the windows yielded never share a digit that masking hides."""
    n = len(d)
    if n < MIN_PAN:
        return
    sums = _luhn_sums(d)
    p = 0
    while p <= n - MIN_PAN:
        if scheme_prefix(d, p):
            e = p + MAX_PAN if p + MAX_PAN <= n else n
            while e >= p + MIN_PAN:
                s = sums[e % 2]
                if (s[e] - s[p]) % 10 == 0:
                    break
                e -= 1
            if e >= p + MIN_PAN:
                yield (p, e - p)
                p = e - KEEP_LAST
                continue
        p += 1


def _chains(text, identifier):
    """Yield (digits, char positions) of each chain of digits in `text`.

    In an identifier a run of more than MAX_PAN contiguous digits is
    dropped and ends the chain."""
    d = []
    pos = []
    run = 0             # contiguous digits just before this char
    i = 0
    for ch in text:
        v = digit_value(ch)
        if v >= 0:
            d.append(v)
            pos.append(i)
            run += 1
        else:
            if identifier and run > MAX_PAN:
                del d[len(d) - run:]
                del pos[len(pos) - run:]
                if d:
                    yield (d, pos)
                d = []
                pos = []
            run = 0
            if ch not in SEPARATORS and d:
                yield (d, pos)
                d = []
                pos = []
        i += 1
    if identifier and run > MAX_PAN:
        del d[len(d) - run:]
        del pos[len(pos) - run:]
    if d:
        yield (d, pos)


def find_card_number(text, identifier=False):
    """The (start, end) character span of the first card number, or None."""
    for d, pos in _chains(text, identifier):
        for p, length in _windows(d):
            return (pos[p], pos[p + length - 1] + 1)
    return None


def contains_card_number(text, identifier=False):
    return find_card_number(text, identifier) is not None


def mask_card_numbers(text, identifier=False):
    """(text with every card number masked, how many were masked).

    All but the first 6 and last 4 digits of each become '*'; separators
    and everything else stay as they were.  The result holds no card
    number by this rule."""
    hide = []
    count = 0
    for d, pos in _chains(text, identifier):
        for p, length in _windows(d):
            count += 1
            for k in range(p + KEEP_FIRST, p + length - KEEP_LAST):
                hide.append(pos[k])
    if not count:
        return (text, 0)
    out = []
    at = 0
    k = 0
    for ch in text:
        if k < len(hide) and hide[k] == at:
            out.append("*")
            k += 1
        else:
            out.append(ch)
        at += 1
    return ("".join(out), count)


def edge_digits(text, identifier=False):
    """(leading, trailing): the digits (as ASCII str, at most MAX_PAN - 1)
    of the chains touching the start and the end of `text`, for finding a
    card number split across two fields."""
    head = ""
    tail = ""
    first = True
    at = 0
    n = len(text)
    for d, pos in _chains(text, identifier):
        digits = "".join([_ASCII_DIGITS[v] for v in d])
        if first and _only_separators_before(text, pos[0]):
            head = digits[:MAX_PAN - 1]
        first = False
        at = pos[-1] + 1
        tail = digits[len(digits) - (MAX_PAN - 1):] if len(digits) > MAX_PAN - 1 else digits
    if not tail or not _only_separators_after(text, at, n):
        tail = ""
    return (head, tail)


def _only_separators_before(text, end):
    k = 0
    for ch in text:
        if k >= end:
            return True
        if ch not in SEPARATORS:
            return False
        k += 1
    return True


def _only_separators_after(text, start, n):
    k = 0
    for ch in text:
        if k >= start and ch not in SEPARATORS:
            return False
        k += 1
    return True


# --- whole values (a decoded record, a message) -------------------------------

# Keys whose text is an identifier (long digit runs pass), wherever they occur.
IDENTIFIER_KEYS = ("pos_txn_id", "original_pos_txn_id", "order_id", "order_no", "rrn",
                   "acquirer_ref", "out_trade_no", "trade_no", "transaction_id")


def masked_value(value, depth=0):
    """`value` with every card number in its text (map keys and values,
    lists, 16 levels deep) masked; the same object when there was none.
    Bytes and integers are left alone: they are hashes, sizes and times."""
    if isinstance(value, str):
        if might_hold_card_number(value):
            return mask_card_numbers(value)[0]
        return value
    if depth >= 16:
        return value
    if isinstance(value, dict):
        out = None
        for key in value:
            item = value[key]
            if isinstance(item, str):
                new = mask_card_numbers(item, key in IDENTIFIER_KEYS)[0] \
                    if might_hold_card_number(item) else item
            else:
                new = masked_value(item, depth + 1)
            new_key = masked_value(key, depth + 1) if isinstance(key, str) else key
            if out is None and (new is not item or new_key is not key):
                out = {}
                for k in value:
                    if k == key:
                        break
                    out[k] = value[k]
            if out is not None:
                out[new_key] = new
        return value if out is None else out
    if isinstance(value, list):
        items = [masked_value(item, depth + 1) for item in value]
        for a, b in zip(items, value):
            if a is not b:
                return items
        return value
    return value


def masked_bytes(data):
    """Bytes of outside origin (evidence of a malformed message) with every
    card number masked, read as UTF-8 (full-width digits) and as Latin-1
    (a stray 0xA0 byte is a NBSP there); the same object when there was none."""
    if not isinstance(data, (bytes, bytearray)) or len(data) < MIN_PAN:
        return data
    out = bytes(data)
    try:
        text = out.decode("utf-8", "surrogateescape")
        if might_hold_card_number(text):
            masked, count = mask_card_numbers(text)
            if count:
                out = masked.encode("utf-8", "surrogateescape")
    except (LookupError, TypeError, UnicodeError):
        pass                     # MicroPython has no error handlers: Latin-1 below
    # Latin-1 view: one char per byte, so '*' replaces exactly the digit bytes.
    try:
        text = out.decode("latin-1")
    except (LookupError, UnicodeError):
        text = "".join([chr(b) for b in out])
    if might_hold_card_number(text):
        masked, count = mask_card_numbers(text)
        if count:
            out = bytes([ord(c) for c in masked])
    return data if out == data else out


# On CPython one regular expression (C speed) proves most text clean first:
# it matches every chain of 13 digits, which every card number is.  Not on
# MicroPython: its re has no counted repeats, and a pre-filter that silently
# under-matched would let a card number through; there every text is scanned.
if sys.implementation.name == "cpython":
    import re
    _DIGIT_CLASS = "0-9\uff10-\uff19"
    _SEPARATOR_CLASS = "".join("\\u%04x" % ord(c) for c in SEPARATORS)
    # 13 characters in a row from digits and separators: a superset of a
    # chain, and a plain class repeat (several times faster than the chain).
    _run13_search = re.compile("[%s%s]{13}" % (_DIGIT_CLASS, _SEPARATOR_CLASS)).search
    chain13_search = re.compile("[%s](?:[%s]*+[%s]){12}" % (
        _DIGIT_CLASS, _SEPARATOR_CLASS, _DIGIT_CLASS)).search
else:
    _run13_search = chain13_search = None


def might_hold_card_number(text):
    """False only when `text` surely holds no card number (a cheap test)."""
    if chain13_search is None:
        return True
    return _run13_search(text) is not None and chain13_search(text) is not None


# --- track data and CVV ---------------------------------------------------------

def contains_track_data(text):
    """Track 1 (%B<PAN>^NAME^...), track 2 (;<PAN>=YYMM...?) or its EMV twin (D)."""
    n = len(text)
    for sentinel in ("%B", "%b"):
        at = text.find(sentinel)
        while at >= 0:
            if at + 2 < n and text[at + 2] in _ASCII_DIGITS:
                return True
            at = text.find(sentinel, at + 1)
    if n < 12:
        return False
    # A 12-19 digit run followed by '=' or 'D' and 4+ digits (expiry, service code).
    run = 0
    after = -1          # digits after the '='/'D' that ended a 12-19 run
    for ch in text:
        digit = digit_value(ch) >= 0
        if after >= 0:
            if digit:
                after += 1
                if after >= 4:
                    return True
                continue
            after = -1
        if digit:
            run += 1
        else:
            if 12 <= run <= MAX_PAN and ch in "=Dd":
                after = 0
            run = 0
    # Name field framed by carets after a digit: "...1111^DOE/J^2512..."
    first = text.find("^")
    if first > 0 and text.find("^", first + 1) > first and digit_value(text[first - 1]) >= 0:
        return True
    return False


def contains_cvv(text):
    low = text.lower()
    for word in _CVV_WORDS:
        start = 0
        while True:
            at = low.find(word, start)
            if at < 0:
                break
            start = at + 1
            if at > 0 and low[at - 1] in _ALNUM:
                continue
            k = at + len(word)
            while k < len(low) and low[k] in " :=#-":
                k += 1
            j = k
            while j < len(low) and low[j] in _ASCII_DIGITS:
                j += 1
            if 3 <= j - k <= 4:
                return True
    return False


def card_data_code(text, identifier=False):
    """None when `text` is clean, else the refusal code: track_refused,
    pan_refused or cvv_refused (the first that applies, in that order)."""
    if len(text) < 3:
        return None             # too short for "%B9", a CVV word or 13 digits
    if contains_track_data(text):
        return "track_refused"
    if len(text) >= MIN_PAN and find_card_number(text, identifier) is not None:
        return "pan_refused"
    if contains_cvv(text):
        return "cvv_refused"
    return None
