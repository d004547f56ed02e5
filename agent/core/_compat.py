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


def _text_keys_only(obj, depth):
    if depth > 16:
        return False
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str) or not _text_keys_only(value, depth + 1):
                return False
        return True
    if isinstance(obj, (list, tuple)):
        for value in obj:
            if not _text_keys_only(value, depth + 1):
                return False
        return True
    if isinstance(obj, int) and not isinstance(obj, bool):
        # cbor2 would write a bignum tag where our encoder refuses.
        return -18446744073709551616 <= obj <= 18446744073709551615
    return not isinstance(obj, float)


def fast_dumps(obj):
    """Canonical CBOR through cbor2 when that is byte-identical, else None."""
    if _cbor2_dumps is None or not _text_keys_only(obj, 0):
        return None
    try:
        return _cbor2_dumps(obj, canonical=True)
    except Exception:  # an unsupported value: the portable encoder names it
        return None
