"""The CBOR speed-up on CPython: cbor2's C encoder and decoder where they give
our exact bytes (cbor.py falls back to its portable code everywhere else).

cbor2's C encoder: on CPython, cbor2 writes exactly our bytes (shortest
heads, definite lengths) for every value built of text-keyed maps, arrays,
64-bit integers, byte and text strings, booleans and null, provided each
map's items come in RFC 8949 4.2.1 order.  For text keys that order is
(UTF-8 length, UTF-8 bytes): the head of a text string grows with its
length, so comparing encodings compares lengths first.  cbor2's own
`canonical=True` sorts as well but costs four times a plain dump, so
`_ordered` puts each map in that order itself (remembering the order per
key tuple: payloads of one kind repeat their keys) and cbor2 then dumps
plainly, about 3x faster than even cbor2's canonical mode.  MicroPython,
and any other value, take the portable encoder.
"""

try:
    from cbor2 import dumps as _cbor2_dumps  # CPython only
    from cbor2 import loads as _cbor2_loads
except ImportError:  # MicroPython, or cbor2 not installed
    _cbor2_dumps = _cbor2_loads = None


_U64 = 18446744073709551616
_MAX_DEPTH = 16
_NO = object()              # "not for the fast path": the portable encoder decides
_SAME = ()                  # key order already canonical
_KEY_ORDERS = {}            # key tuple -> _SAME, the canonical key tuple, or _NO
_KEY_ORDERS_LIMIT = 4096    # maps keyed by data would otherwise grow it without bound
_LEAVES = frozenset((str, bytes, bool, int, type(None)))


def _key_order(keys):
    order = _KEY_ORDERS.get(keys)
    if order is None:
        for key in keys:
            if type(key) is not str:
                order = _NO
                break
        else:
            try:
                ranked = sorted(keys, key=_text_rank)
            except UnicodeError:    # a lone surrogate: not encodable, the portable encoder says so
                ranked = None
            order = _NO if ranked is None else (_SAME if tuple(ranked) == keys else tuple(ranked))
        if len(_KEY_ORDERS) < _KEY_ORDERS_LIMIT:
            _KEY_ORDERS[keys] = order
    return order


def _text_rank(key):
    raw = key.encode("utf-8")
    return len(raw), raw


def _ordered(obj, depth):
    """`obj` with every map in canonical key order (`obj` itself if already
    so), or _NO if some part is not for cbor2.  Exact type tests, not
    isinstance: this walk runs on every record, and any subclass simply takes
    the portable path.  Integer ranges are checked after encoding (fast_dumps)."""
    kind = type(obj)
    if kind is dict:
        if obj and depth >= _MAX_DEPTH:
            return _NO      # its items would sit deeper than the portable encoder allows
        keys = tuple(obj)
        order = _KEY_ORDERS.get(keys)
        if order is None:
            order = _key_order(keys)
        if order is _NO:
            return _NO
        out = obj if order is _SAME else dict(zip(order, map(obj.__getitem__, order)))
        if _LEAVES.issuperset(map(type, out.values())):
            return out      # the common flat payload: one C-level scan
        return _ordered_children(out, list(out.items()), depth, dict)
    if kind is list or kind is tuple:
        if obj and depth >= _MAX_DEPTH:
            return _NO
        if _LEAVES.issuperset(map(type, obj)):
            return obj
        return _ordered_children(obj, enumerate(obj), depth, list)
    return obj if kind in _LEAVES else _NO


def _ordered_children(container, items, depth, copy):
    """`container` with each non-leaf item (index or key, value) ordered, or
    _NO; copied (with `copy`) only if some item changes."""
    out = container
    for where, value in items:
        if type(value) not in _LEAVES:
            new = _ordered(value, depth + 1)
            if new is _NO:
                return _NO
            if new is not value:
                if out is container:
                    out = copy(container)
                out[where] = new
    return out


def _ints_fit(obj):
    """True if every integer in `obj` fits 64 bits (SPEC 2: no bignums)."""
    kind = type(obj)
    if kind is int:
        return -_U64 <= obj < _U64
    if kind is dict:
        obj = obj.values()
    elif kind is not list and kind is not tuple:
        return True
    for value in obj:
        if not _ints_fit(value):
            return False
    return True


def fast_dumps(obj):
    """Canonical CBOR through cbor2 when that is byte-identical, else None."""
    if _cbor2_dumps is None:
        return None
    ordered = _ordered(obj, 0)
    if ordered is _NO:
        return None
    try:
        encoded = _cbor2_dumps(ordered)
    except Exception:  # an unsupported value: the portable encoder names it
        return None
    # cbor2 writes an integer beyond 64 bits as a bignum, tag 2 or 3: head
    # byte 0xc2 or 0xc3.  Where neither byte occurs there is none; where one
    # does (inside a string, mostly) the walk decides.
    if (b"\xc2" in encoded or b"\xc3" in encoded) and not _ints_fit(ordered):
        return None
    return encoded


def fast_loads(data):
    """Decode through cbor2's C decoder, or None to let the portable decoder
    decide (and name what is wrong).

    Accepted only if our canonical encoding of the result is `data` byte for
    byte: then `data` is canonical and in our subset, whatever cbor2 is
    lenient about (floats, tags, string references, duplicate or unsorted
    keys, long heads all re-encode differently or not at all)."""
    if _cbor2_loads is None or not isinstance(data, bytes):
        return None
    try:
        obj = _cbor2_loads(data)
    except Exception:  # anything cbor2 refuses: the portable decoder names it
        return None
    if fast_dumps(obj) != data:
        return None
    return obj
