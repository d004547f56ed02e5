"""Record frames (SPEC 3.3), read from the spec alone: the one frame check and
resync of the verifier side.

    magic 0xDA5A | type u8 | flags u8 | body length u32 BE | body | CRC-32 u32 BE

The CRC covers magic to body.  A frame is valid when its magic is there, its
length is 1..MAX_BODY and fits before `end`, and its CRC matches.  After
damage a reader resynchronises on the next valid frame (`next_frame`).
Every reader of the verifier side (reader.py, journal.py, fast.py,
anchor.py, reconcile/journal.py) checks frames here.
"""

import struct
import zlib

FRAME_MAGIC = b"\xda\x5a"
FRAME_HEADER = 8          # magic, type, flags, length
FRAME_OVERHEAD = 12       # header and CRC
MAX_BODY = 65536

_head = struct.Struct(">BBI").unpack_from
_u32 = struct.Struct(">I").unpack_from
_magic_and_length = struct.Struct(">HBBI").unpack_from
_MAGIC_INT = 0xDA5A


def crc32(data):
    """SPEC 3: ISO-HDLC CRC-32, as zlib computes it."""
    return zlib.crc32(data) & 0xFFFFFFFF


def frame_head(data, pos):
    """(type, flags, body length) of the frame header at pos (not checked)."""
    return _head(data, pos + 2)


def body_length(data, pos, end):
    """The body length if a frame magic and a length that fits before `end`
    start at pos (the CRC unchecked), else None."""
    if pos + FRAME_OVERHEAD > end or data[pos:pos + 2] != FRAME_MAGIC:
        return None
    n = _u32(data, pos + 4)[0]
    return n if 1 <= n <= MAX_BODY and pos + FRAME_OVERHEAD + n <= end else None


def stored_and_computed_crc(data, pos, n):
    """(CRC stored after the body, CRC computed over magic..body) of a frame of body length n."""
    stop = pos + FRAME_HEADER + n
    return _u32(data, stop)[0], crc32(data[pos:stop])


def frame_ok(data, pos, end):
    """True if a valid frame (magic, length, CRC) starts at pos and ends by `end`."""
    n = body_length(data, pos, end)
    if n is None:
        return False
    stored, computed = stored_and_computed_crc(data, pos, n)
    return stored == computed


def frame_problem(data, pos, end):
    """None if a valid frame starts at pos, else (finding kind, why)."""
    if data[pos:pos + 2] != FRAME_MAGIC or pos + FRAME_OVERHEAD > end:
        return "BadFrame", "no record frame magic"
    n = _u32(data, pos + 4)[0]
    if not 1 <= n <= MAX_BODY or pos + FRAME_OVERHEAD + n > end:
        return "BadFrame", "body length %d does not fit" % n
    stored, computed = stored_and_computed_crc(data, pos, n)
    if stored != computed:
        return "CrcMismatch", "CRC 0x%08x, computed 0x%08x" % (stored, computed)
    return None


def next_frame(data, start, end):
    """Resync: the offset of the first valid frame at or after `start`, or None."""
    while True:
        q = data.find(FRAME_MAGIC, start, end)
        if q < 0:
            return None
        if frame_ok(data, q, end):
            return q
        start = q + 1


def valid_frames(data, start, end):
    """(offset, type, flags, body length) of each valid frame from `start`, one
    after another, until the first place that does not hold one."""
    pos = start
    while True:
        n = body_length(data, pos, end)
        if n is None:
            return
        stored, computed = stored_and_computed_crc(data, pos, n)
        if stored != computed:
            return
        rtype, flags, _ = _head(data, pos + 2)
        yield pos, rtype, flags, n
        pos += FRAME_OVERHEAD + n


def frame_spans(data, start, end):
    """The frames that lengths alone chain from `start` (no CRC checked; the
    fast path checks CRCs of a whole segment at once):
    (starts, CRC'd-bytes ends, offset after the last frame), or None if a
    frame's length does not fit before `end`."""
    starts, stops = [], []
    pos = start
    while pos + FRAME_OVERHEAD <= end:
        magic, _, _, n = _magic_and_length(data, pos)
        if magic != _MAGIC_INT:
            break
        if n > MAX_BODY or n < 1 or pos + FRAME_OVERHEAD + n > end:
            return None
        starts.append(pos)
        pos += FRAME_HEADER + n
        stops.append(pos)
        pos += 4
    return starts, stops, pos
