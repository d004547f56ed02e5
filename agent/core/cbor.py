"""Deterministic CBOR (RFC 8949 section 4.2), the subset daozhang uses.

SPEC 2: unsigned and negative integers, byte strings, text strings, arrays,
maps, false, true and null; definite lengths only; shortest-form heads; map
keys unique and sorted by their encoded bytes; no floats, no tags.  Money is
always an integer in minor units, so floats have no place in our bytes.

`loads` accepts exactly what `dumps` produces: any other input (a longer head
than needed, unsorted or duplicate keys, indefinite lengths, floats, tags,
trailing bytes, nesting deeper than MAX_DEPTH) raises DecodeError and nothing
else.  Written by hand because cbor2 does not run on MicroPython; the
host-side verifier decodes with cbor2 and checks canonical form independently.
"""

import struct

from daozhang.agent.core.cbor_fast import fast_dumps, fast_loads
from daozhang.agent.core.errors import DecodeError, LocalError

MAX_DEPTH = 16
_UINT64_MAX = 0xFFFFFFFFFFFFFFFF


def _head(major, value):
    mt = major << 5
    if value < 24:
        return bytes((mt | value,))
    if value < 0x100:
        return bytes((mt | 24, value))
    if value < 0x10000:
        return struct.pack(">BH", mt | 25, value)
    if value < 0x100000000:
        return struct.pack(">BI", mt | 26, value)
    if value <= _UINT64_MAX:
        return struct.pack(">BQ", mt | 27, value)
    raise LocalError("cbor: integer out of 64-bit range")


def uint_bytes(value):
    """An unsigned integer, encoded (major type 0, shortest head)."""
    return _head(0, value)


def bytes_item(value):
    """A byte string, encoded (head and content)."""
    return _head(2, len(value)) + bytes(value)


def text_item(value):
    """A text string, encoded (head and UTF-8 content)."""
    raw = value.encode("utf-8")
    return _head(3, len(raw)) + raw


def _encode(obj, out, depth):
    if depth > MAX_DEPTH:
        raise LocalError("cbor: nesting deeper than %d" % MAX_DEPTH)
    # bool before int: True is an int on CPython.
    if obj is True:
        out.append(b"\xf5")
    elif obj is False:
        out.append(b"\xf4")
    elif obj is None:
        out.append(b"\xf6")
    elif isinstance(obj, int):
        if obj >= 0:
            out.append(_head(0, obj))
        else:
            out.append(_head(1, -1 - obj))
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        obj = bytes(obj)
        out.append(_head(2, len(obj)))
        out.append(obj)
    elif isinstance(obj, str):
        raw = obj.encode("utf-8")
        out.append(_head(3, len(raw)))
        out.append(raw)
    elif isinstance(obj, (list, tuple)):
        out.append(_head(4, len(obj)))
        for item in obj:
            _encode(item, out, depth + 1)
    elif isinstance(obj, dict):
        pairs = []
        for key, value in obj.items():
            kout = []
            _encode(key, kout, depth + 1)
            pairs.append((b"".join(kout), value))
        # RFC 8949 4.2.1: keys sorted bytewise by their deterministic encoding.
        pairs.sort(key=lambda pair: pair[0])
        out.append(_head(5, len(pairs)))
        for kbytes, value in pairs:
            out.append(kbytes)
            _encode(value, out, depth + 1)
    else:
        raise LocalError("cbor: cannot encode %s" % type(obj).__name__)


def dumps(obj):
    """Encode `obj` deterministically; LocalError for unsupported values."""
    fast = fast_dumps(obj)
    if fast is not None:
        return fast
    return dumps_portable(obj)


def dumps_portable(obj):
    """The reference encoder, the only one on MicroPython."""
    out = []
    _encode(obj, out, 0)
    return b"".join(out)


class _Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        end = self.pos + n
        if end > len(self.data):
            raise DecodeError("cbor: truncated at byte %d" % self.pos)
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def head(self):
        start = self.pos
        ib = self.take(1)[0]
        major = ib >> 5
        info = ib & 0x1F
        if info < 24:
            return major, info, start
        if info == 24:
            value = self.take(1)[0]
            minimum = 24
        elif info == 25:
            value = struct.unpack(">H", self.take(2))[0]
            minimum = 0x100
        elif info == 26:
            value = struct.unpack(">I", self.take(4))[0]
            minimum = 0x10000
        elif info == 27:
            value = struct.unpack(">Q", self.take(8))[0]
            minimum = 0x100000000
        elif info == 31:
            raise DecodeError("cbor: indefinite length at byte %d" % start)
        else:
            raise DecodeError("cbor: reserved additional info %d at byte %d" % (info, start))
        if major == 7:
            raise DecodeError("cbor: float or simple value at byte %d" % start)
        if value < minimum:
            raise DecodeError("cbor: non-shortest head at byte %d" % start)
        return major, value, start


def _decode(reader, depth):
    if depth > MAX_DEPTH:
        raise DecodeError("cbor: nesting deeper than %d at byte %d" % (MAX_DEPTH, reader.pos))
    major, value, start = reader.head()
    if major == 0:
        return value
    if major == 1:
        return -1 - value
    if major == 2:
        return bytes(reader.take(value))
    if major == 3:
        raw = reader.take(value)
        try:
            return str(raw, "utf-8")
        except (UnicodeError, ValueError):
            raise DecodeError("cbor: invalid UTF-8 at byte %d" % start)
    if major == 4:
        # Each item takes at least one byte: reject absurd counts up front.
        if value > len(reader.data) - reader.pos:
            raise DecodeError("cbor: array length %d exceeds input at byte %d" % (value, start))
        return [_decode(reader, depth + 1) for _ in range(value)]
    if major == 5:
        if 2 * value > len(reader.data) - reader.pos:
            raise DecodeError("cbor: map length %d exceeds input at byte %d" % (value, start))
        result = {}
        previous = None
        for _ in range(value):
            kstart = reader.pos
            key = _decode(reader, depth + 1)
            kbytes = bytes(reader.data[kstart:reader.pos])
            if previous is not None and kbytes <= previous:
                if kbytes == previous:
                    raise DecodeError("cbor: duplicate map key at byte %d" % kstart)
                raise DecodeError("cbor: map keys not sorted at byte %d" % kstart)
            if isinstance(key, (list, dict)):
                raise DecodeError("cbor: unhashable map key at byte %d" % kstart)
            previous = kbytes
            result[key] = _decode(reader, depth + 1)
        return result
    if major == 6:
        raise DecodeError("cbor: tags are not allowed (byte %d)" % start)
    # major 7 with info < 24: simple values
    if value == 20:
        return False
    if value == 21:
        return True
    if value == 22:
        return None
    raise DecodeError("cbor: simple value %d not allowed at byte %d" % (value, start))


def loads(data):
    """Decode one canonical CBOR item filling all of `data`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("cbor: expected bytes, got %s" % type(data).__name__)
    fast = fast_loads(data)
    if fast is not None:
        return fast
    reader = _Reader(memoryview(data) if not isinstance(data, bytes) else data)
    obj = _decode(reader, 0)
    if reader.pos != len(reader.data):
        raise DecodeError("cbor: %d trailing bytes at byte %d" % (len(reader.data) - reader.pos, reader.pos))
    return obj
