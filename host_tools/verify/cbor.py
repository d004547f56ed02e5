"""Deterministic CBOR checks for the verifier (SPEC 2), built on cbor2.

cbor2 decodes more than SPEC 2 allows (floats, tags, simple values, bignums,
indefinite lengths) and is lenient about form, so a body passes only if:

1. cbor2 decodes it, refusing indefinite lengths, duplicate keys, bignum
   tags and nesting deeper than 16 (STRICT_DECODE);
2. cbor2 re-encodes the decoded value (keeping the decoded key order) to the
   very same bytes: this rejects non-shortest heads, indefinite lengths,
   duplicate map keys and trailing bytes;
3. every item is of a type SPEC 2 allows (no float, tag, undefined or other
   simple value; integers within 64 bits),
   nesting is at most 16 deep, and map keys are sorted by their encodings
   (RFC 8949 §4.2.1 bytewise order, which cbor2's `canonical=True` does not
   use for mixed key types, hence our own check).

Step 3 has a fast path for the common flat payload (text keys, scalar values):
a set test over the value types and a cache of key tuples already known to be
sorted, so a transaction costs one decode, one encode and two C-level scans.
(max_depth counts the top-level body array as well, hence MAX_DEPTH + 1.)
"""

import cbor2

MAX_DEPTH = 16
_INT_MIN = -(1 << 64)
_INT_MAX = (1 << 64) - 1
_SCALARS = frozenset((int, str, bytes, bool, type(None)))
# A tag-2/3 bignum too big for 64 bits: tag head 0xc2/0xc3 then a byte string
# of at least 9 bytes.  Only a prefilter: a match sends the body to the walk.


def _reject_tag(decoder):
    raise CborProblem("tagged item (SPEC 2 forbids tags)")


# cbor2 itself refuses indefinite lengths, duplicate keys and the bignum tags
# (2, 3) that would otherwise decode to plain ints and re-encode identically.
STRICT_DECODE = {"semantic_decoders": {2: _reject_tag, 3: _reject_tag}, "allow_indefinite": False,
                 "allow_duplicate_keys": False, "max_depth": MAX_DEPTH + 1}
_sorted_key_tuples = {}
_KEY_CACHE_LIMIT = 4096


class CborProblem(Exception):
    """Internal: why a body is not deterministic CBOR (becomes a finding)."""


def decode_canonical(data):
    """The value of `data` if it is deterministic CBOR (SPEC 2), else CborProblem."""
    value = decode_roundtrip(data)
    _check_item(value, 0)
    return value


def decode_roundtrip(data):
    """Steps 1 and 2 only: the caller checks the item types (step 3)."""
    try:
        value = cbor2.loads(data, **STRICT_DECODE)
    except Exception as exc:  # cbor2 raises several types; all mean "not CBOR"
        raise CborProblem("not well-formed CBOR: %s" % _short(exc)) from None
    try:
        again = cbor2.dumps(value)
    except Exception as exc:
        raise CborProblem("holds an item outside SPEC 2: %s" % _short(exc)) from None
    if again != data:
        raise CborProblem(_form_problem(data, again))
    return value


def check_flat_payload(payload, body):
    """Fast SPEC 2 check of a decoded payload map whose bytes already re-encoded
    identically; falls back to the full walk when anything is unusual."""
    keys = tuple(payload)
    sorted_ok = _sorted_key_tuples.get(keys)
    if sorted_ok is None:
        sorted_ok = all(type(k) is str for k in keys) and _keys_sorted(keys)
        if len(_sorted_key_tuples) < _KEY_CACHE_LIMIT:
            _sorted_key_tuples[keys] = sorted_ok
    if not sorted_ok:
        raise CborProblem("payload map keys are not text sorted by their encodings")
    if _SCALARS.issuperset(map(type, payload.values())):
        return
    _check_item(payload, 1)


def _check_item(item, depth):
    if depth > MAX_DEPTH:
        raise CborProblem("nested deeper than %d" % MAX_DEPTH)
    kind = type(item)
    if kind is int:
        if not _INT_MIN <= item <= _INT_MAX:
            raise CborProblem("integer %d outside 64 bits (a tagged bignum)" % item)
    elif kind is str or kind is bytes or kind is bool or item is None:
        return
    elif kind is list:
        for element in item:
            _check_item(element, depth + 1)
    elif kind is dict:
        keys = tuple(item)
        if not _keys_sorted(keys):
            raise CborProblem("map keys are not sorted by their encodings")
        for key, value in item.items():
            if type(key) not in _SCALARS:   # cbor2 turns array keys into tuples; the writer refuses them
                raise CborProblem("a map key is an array or a map")
            _check_item(key, depth + 1)
            _check_item(value, depth + 1)
    else:
        raise CborProblem("holds a %s, which SPEC 2 forbids (floats, tags, simple values)" % kind.__name__)


def _keys_sorted(keys):
    if len(keys) < 2:
        return True
    try:
        encoded = [cbor2.dumps(k) for k in keys]
    except Exception:
        return False
    return all(encoded[i] < encoded[i + 1] for i in range(len(encoded) - 1))


def _form_problem(data, again):
    if len(again) < len(data) and data.startswith(again):
        return "%d trailing byte(s) after the item" % (len(data) - len(again))
    for i in range(min(len(data), len(again))):
        if data[i] != again[i]:
            return ("not in deterministic form at body byte %d: expected 0x%02x, found 0x%02x "
                    "(longer head, indefinite length, duplicate key or float width)" % (i, again[i], data[i]))
    return "not in deterministic form: re-encodes to %d bytes, found %d" % (len(again), len(data))


def _short(exc):
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
