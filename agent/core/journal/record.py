"""Record frames and bodies of the journal (SPEC 3.3-3.5).

A frame is   magic(2) type(1) flags(1) length(4) body(n) crc32(4)
and the record hash is SHA-256 over everything but the CRC.  The body is the
canonical CBOR array [seq, prev, wall_ms, boot_id, mono_ms, payload].
Portable: CPython and MicroPython.
"""

import binascii
import hashlib
import struct

from daozhang.agent.core import cbor
from daozhang.agent.core.errors import DecodeError, LocalError

MAGIC = b"\xda\x5a"
HEADER_SIZE = 8
CRC_SIZE = 4
OVERHEAD = HEADER_SIZE + CRC_SIZE
MAX_BODY = 65536
HASH_SIZE = 32
BOOT_ID_SIZE = 8
ZERO_HASH = b"\x00" * HASH_SIZE

FLAG_OUTAGE = 0x01
_KNOWN_FLAGS = FLAG_OUTAGE

TYPE_TRANSACTION = 1
TYPE_SETTLEMENT_ACK = 2
TYPE_ALERT = 3
TYPE_BOOT = 4
TYPE_CLOCK = 5
TYPE_CONFIG = 6
TYPE_KEY_ROTATION = 7
TYPE_CHECKPOINT = 8
TYPE_SYNC_ACK = 9
TYPE_PADDING = 10
TYPE_SALVAGE = 11

TYPE_NAMES = {
    TYPE_TRANSACTION: "transaction",
    TYPE_SETTLEMENT_ACK: "settlement_ack",
    TYPE_ALERT: "alert",
    TYPE_BOOT: "boot",
    TYPE_CLOCK: "clock",
    TYPE_CONFIG: "config",
    TYPE_KEY_ROTATION: "key_rotation",
    TYPE_CHECKPOINT: "checkpoint",
    TYPE_SYNC_ACK: "sync_ack",
    TYPE_PADDING: "padding",
    TYPE_SALVAGE: "salvage",
}


class FrameError(DecodeError):
    """The bytes at `offset` are not a valid frame; `reason` says why."""

    def __init__(self, offset, reason, message):
        super().__init__("offset %d: %s" % (offset, message))
        self.offset = offset
        self.reason = reason


class Record:
    """One decoded record; `size` is the whole frame's length in bytes."""

    __slots__ = ("seq", "type", "flags", "prev", "wall_ms", "boot_id", "mono_ms",
                 "payload", "hash", "offset", "size")

    def __init__(self, seq, rtype, flags, prev, wall_ms, boot_id, mono_ms, payload, rhash, offset, size):
        self.seq = seq
        self.type = rtype
        self.flags = flags
        self.prev = prev
        self.wall_ms = wall_ms
        self.boot_id = boot_id
        self.mono_ms = mono_ms
        self.payload = payload
        self.hash = rhash
        self.offset = offset
        self.size = size

    @property
    def type_name(self):
        return TYPE_NAMES.get(self.type, "type%d" % self.type)

    def __repr__(self):
        return "Record(seq=%d, type=%s, offset=%d)" % (self.seq, self.type_name, self.offset)


def sha256(data):
    """SHA-256 digest of `data` (the record hash, and hashes of bytes set aside)."""
    return hashlib.sha256(data).digest()


def _crc(data):
    return binascii.crc32(data) & 0xFFFFFFFF


def encode(rtype, flags, seq, prev, wall_ms, boot_id, mono_ms, payload):
    """Return (frame bytes, record hash) for one record."""
    return encode_tail(rtype, flags, seq, prev, times_bytes(wall_ms, boot_id, mono_ms), payload)


def times_bytes(wall_ms, boot_id, mono_ms):
    """Body items 3-5 (wall_ms, boot_id, mono_ms) encoded: shared by every
    record of one commit, so a commit encodes them once."""
    if len(boot_id) != BOOT_ID_SIZE:
        raise LocalError("record: prev must be 32 bytes and boot_id 8 bytes")
    return _uint(wall_ms) + b"\x48" + bytes(boot_id) + _uint(mono_ms)


def encode_tail(rtype, flags, seq, prev, times, payload):
    """`encode` given times_bytes(...): the body is written as SPEC 3.4's
    array head, seq, prev, the shared times, then the canonical payload map
    (exactly cbor.dumps of the 6-item array, without re-walking the header)."""
    if rtype not in TYPE_NAMES:
        raise LocalError("record: unknown type %r" % (rtype,))
    if flags & ~_KNOWN_FLAGS:
        raise LocalError("record: unknown flags 0x%02x" % flags)
    if len(prev) != HASH_SIZE:
        raise LocalError("record: prev must be 32 bytes and boot_id 8 bytes")
    if type(payload) is Encoded:
        return encode_frame(rtype, flags, seq, prev, times, payload.data)
    if not isinstance(payload, dict):
        raise LocalError("record: payload must be a map")
    return encode_frame(rtype, flags, seq, prev, times, cbor.dumps(payload))


class Encoded:
    """A payload map already in canonical CBOR, made only by encoding a map
    here: the intake needs the bytes for its content digest and batch sizes
    before the commit, and a sale is then encoded once, not three times."""

    __slots__ = ("data",)

    def __init__(self, payload):
        if not isinstance(payload, dict):
            raise LocalError("record: payload must be a map")
        self.data = cbor.dumps(payload)


def encode_frame(rtype, flags, seq, prev, times, payload_bytes):
    """`encode_tail` given the payload map already in canonical CBOR (the
    checkpoint, which the ring encodes field by field)."""
    body = b"".join((_BODY_HEAD, _uint(seq), _PREV_HEAD, prev, times, payload_bytes))
    if len(body) > MAX_BODY:
        raise LocalError("record: body of %d bytes exceeds %d" % (len(body), MAX_BODY))
    head = MAGIC + struct.pack(">BBI", rtype, flags, len(body)) + body
    return head + struct.pack(">I", _crc(head)), hashlib.sha256(head).digest()


_BODY_HEAD = b"\x86"            # array of 6 items
_PREV_HEAD = b"\x58\x20"        # byte string of 32


def _uint(value):
    # seq, wall_ms and mono_ms are unsigned (SPEC 3.4); bool is not a number here.
    if type(value) is not int or value < 0:
        raise LocalError("record: seq and times must be non-negative integers, got %r" % (value,))
    return cbor.uint_bytes(value)


def frame_size_from_header(buf, offset):
    """Whole length of the frame whose header is at `offset`, 0 at erased
    space, or FrameError.  Needs only the header in `buf`, not the body: a
    reader that fetches a segment in pieces learns how far the frame runs
    even when it crosses the end of the piece (SPEC 6.6).
    """
    end = len(buf)
    if offset + 2 > end:
        # One byte left in the segment: erased space if it is zero.
        if offset >= end or buf[offset] == 0:
            return 0
        raise FrameError(offset, "short", "frame header runs past the end")
    if buf[offset] == 0 and buf[offset + 1] == 0:
        return 0
    if offset + HEADER_SIZE > end:
        raise FrameError(offset, "short", "frame header runs past the end")
    if buf[offset:offset + 2] != MAGIC:
        raise FrameError(offset, "magic", "bad magic %s" % bytes(buf[offset:offset + 2]).hex())
    rtype, flags, length = struct.unpack_from(">BBI", buf, offset + 2)
    if flags & ~_KNOWN_FLAGS:
        raise FrameError(offset, "flags", "unknown flags 0x%02x" % flags)
    if length < 1 or length > MAX_BODY:
        raise FrameError(offset, "length", "body length %d outside 1..%d" % (length, MAX_BODY))
    return length + OVERHEAD


def frame_length_at(buf, offset):
    """Length of the frame at `offset`, 0 at erased space, or FrameError.

    Checks only what can be checked without the body: magic, flags, length,
    and that the frame fits in `buf`.
    """
    size = frame_size_from_header(buf, offset)
    if size and offset + size > len(buf):
        raise FrameError(offset, "short", "frame of %d bytes runs past the end" % size)
    return size


def decode_at(buf, offset):
    """Decode the frame at `offset` of `buf`; Record, None at erased space, or FrameError."""
    size = frame_length_at(buf, offset)
    if size == 0:
        return None
    crc_at = offset + size - CRC_SIZE
    head = bytes(buf[offset:crc_at])
    if struct.unpack_from(">I", buf, crc_at)[0] != _crc(head):
        raise FrameError(offset, "crc", "CRC mismatch")
    rtype = head[2]
    if rtype not in TYPE_NAMES:
        raise FrameError(offset, "type", "unknown record type %d" % rtype)
    try:
        body = cbor.loads(head[HEADER_SIZE:])
    except DecodeError as exc:
        raise FrameError(offset, "cbor", str(exc))
    if not isinstance(body, list) or len(body) != 6:
        raise FrameError(offset, "body", "body is not a 6-item array")
    seq, prev, wall_ms, boot_id, mono_ms, payload = body
    if not (isinstance(seq, int) and seq >= 0 and isinstance(prev, bytes) and len(prev) == HASH_SIZE
            and isinstance(wall_ms, int) and wall_ms >= 0 and isinstance(boot_id, bytes)
            and len(boot_id) == BOOT_ID_SIZE and isinstance(mono_ms, int) and mono_ms >= 0
            and isinstance(payload, dict)):
        raise FrameError(offset, "body", "body fields have the wrong types")
    return Record(seq, rtype, head[3], prev, wall_ms, boot_id, mono_ms, payload,
                  hashlib.sha256(head).digest(), offset, size)
