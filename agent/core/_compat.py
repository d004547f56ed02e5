"""What differs between CPython and MicroPython, in one place.

cbor2's C encoder: on CPython, canonical cbor2 output equals our encoder's
for every value whose maps have text keys only (RFC 7049 length-first order
and RFC 8949 bytewise order coincide for text keys), which is every map in
our formats (SPEC 2).  It is 3x faster, so the encoder uses it for such
values; MicroPython, and any other value, take the portable path.
"""

try:
    from cbor2 import dumps as _cbor2_dumps  # CPython only
except ImportError:  # MicroPython, or cbor2 not installed
    _cbor2_dumps = None


_U64 = 18446744073709551616


def _text_keys_only(obj, depth):
    """True if every map key is text and every int fits 64 bits (cbor2 then
    writes exactly our bytes).  Exact type tests, not isinstance: this walk
    runs on every record, and any subclass simply takes the portable path."""
    if depth > 16:
        return False
    kind = type(obj)
    if kind is dict:
        for key in obj:
            if type(key) is not str:
                return False
        values = obj.values()
    elif kind is list or kind is tuple:
        values = obj
    elif kind is int:
        return -_U64 <= obj < _U64
    else:
        return kind is str or kind is bytes or kind is bool or obj is None
    for value in values:
        vt = type(value)
        if vt is str or vt is bytes or vt is bool or value is None:
            continue
        if vt is int:
            if not -_U64 <= value < _U64:
                return False
        elif not _text_keys_only(value, depth + 1):
            return False
    return True


def fast_dumps(obj):
    """Canonical CBOR through cbor2 when that is byte-identical, else None."""
    if _cbor2_dumps is None or not _text_keys_only(obj, 0):
        return None
    try:
        return _cbor2_dumps(obj, canonical=True)
    except Exception:  # an unsupported value: the portable encoder names it
        return None
