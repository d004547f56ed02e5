"""Frames of the USB service port, sans-IO (docs/SPEC.md §8, "Frame layout").

The codec never touches a port: `receive_data(bytes)` feeds it, `next_event()`
returns a `Frame`, a `BadFrame` or `NEED_DATA`, and `send(frame)` returns the
bytes to write.  The same class serves the device and the laptop, on CPython
and MicroPython.

Frame: magic "DZU1" | type u8 | flags u8 | seq u16 | length u32 |
header CRC-32 | CBOR payload | CRC-32 of everything before it.

Resynchronisation: a rejected candidate frame only drops its first byte, so a
good frame that followed a torn one is still found in what we hold.  Memory is
bounded: the receive buffer never exceeds `buffer_limit` (two maximum frames);
a caller that feeds more without draining events gets a LocalError.
"""

import binascii
import struct

from daozhang.agent.core import cbor
from daozhang.agent.core.errors import DecodeError, LocalError, RemoteError

MAGIC = b"DZU1"
HEADER_SIZE = 16
TRAILER_SIZE = 4
MAX_PAYLOAD = 65536
MIN_PAYLOAD_LIMIT = 256

REQUEST = 1
RESPONSE = 2
ERROR = 3
NAK = 4
TYPE_NAMES = {REQUEST: "REQUEST", RESPONSE: "RESPONSE", ERROR: "ERROR", NAK: "NAK"}

# BadFrame reasons (SPEC 8.2).
GARBAGE = "garbage"
HEADER_CRC = "header_crc"
FLAGS = "flags"
OVERSIZE = "oversize"
CRC = "crc"
TRUNCATED = "truncated"
PAYLOAD = "payload"

_HEADER = ">4sBBHI"  # magic, type, flags, seq, length: 12 bytes, then header CRC


class _NeedData:
    def __repr__(self):
        return "NEED_DATA"


NEED_DATA = _NeedData()


class FrameError(RemoteError):
    """A frame from the peer could not be used (raised by `decode_frame`)."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


class Frame:
    """One good frame: `type`, `seq` and the decoded CBOR `payload` (a map)."""

    def __init__(self, type, seq, payload):
        if not isinstance(type, int) or not 0 <= type <= 0xFF:
            raise LocalError("frame type must be 0..255, got %r" % (type,))
        if not isinstance(seq, int) or not 0 <= seq <= 0xFFFF:
            raise LocalError("frame seq must be 0..65535, got %r" % (seq,))
        if not isinstance(payload, dict):
            raise LocalError("frame payload must be a map, got %s" % payload.__class__.__name__)
        self.type = type
        self.seq = seq
        self.payload = payload

    def __eq__(self, other):
        return (isinstance(other, Frame) and self.type == other.type
                and self.seq == other.seq and self.payload == other.payload)

    def __repr__(self):
        return "Frame(%s, seq=%d, %r)" % (TYPE_NAMES.get(self.type, self.type), self.seq, self.payload)


class BadFrame:
    """Bytes were dropped. `reason` says why, `dropped` how many bytes.

    For reason PAYLOAD the frame arrived intact (CRC good) but its payload is
    not a canonical CBOR map: `type` and `seq` are then known so the receiver
    can answer the request with an error instead of a NAK.
    """

    def __init__(self, reason, dropped, type=None, seq=None):
        self.reason = reason
        self.dropped = dropped
        self.type = type
        self.seq = seq

    def __eq__(self, other):
        return (isinstance(other, BadFrame) and self.reason == other.reason
                and self.dropped == other.dropped and self.type == other.type
                and self.seq == other.seq)

    def __repr__(self):
        return "BadFrame(%s, dropped=%d)" % (self.reason, self.dropped)


def crc32(data):
    return binascii.crc32(data) & 0xFFFFFFFF


def encode_frame(frame, max_payload=MAX_PAYLOAD):
    payload = cbor.dumps(frame.payload)
    if len(payload) > max_payload:
        raise LocalError("frame payload is %d bytes, limit %d" % (len(payload), max_payload))
    head = struct.pack(_HEADER, MAGIC, frame.type, 0, frame.seq, len(payload))
    head += struct.pack(">I", crc32(head))
    body = head + payload
    return body + struct.pack(">I", crc32(body))


class FrameCodec:
    """Incremental frame decoder and encoder for one end of a link."""

    def __init__(self, max_payload=MAX_PAYLOAD):
        if not isinstance(max_payload, int) or max_payload < MIN_PAYLOAD_LIMIT:
            raise LocalError("max_payload must be an int >= %d, got %r" % (MIN_PAYLOAD_LIMIT, max_payload))
        self.max_payload = max_payload
        self.max_frame = HEADER_SIZE + max_payload + TRAILER_SIZE
        self.buffer_limit = 2 * self.max_frame
        self._buf = b""

    @property
    def buffered(self):
        return len(self._buf)

    def send(self, frame):
        return encode_frame(frame, self.max_payload)

    def receive_data(self, data):
        if len(self._buf) + len(data) > self.buffer_limit:
            raise LocalError("receive buffer would hold %d bytes, limit %d: call next_event() first"
                             % (len(self._buf) + len(data), self.buffer_limit))
        if data:
            self._buf = self._buf + bytes(data)

    def discard_partial(self):
        """Drop an incomplete frame held through a silence; BadFrame or None."""
        if not self._buf:
            return None
        dropped = len(self._buf)
        self._buf = b""
        return BadFrame(TRUNCATED, dropped)

    def next_event(self):
        buf = self._buf
        if not buf:
            return NEED_DATA
        start = buf.find(MAGIC)
        if start < 0:
            # Keep a tail that could be the start of a magic split across reads.
            keep = _magic_prefix_len(buf)
            dropped = len(buf) - keep
            if dropped == 0:
                return NEED_DATA
            self._buf = buf[dropped:]
            return BadFrame(GARBAGE, dropped)
        if start > 0:
            self._buf = buf[start:]
            return BadFrame(GARBAGE, start)
        if len(buf) < HEADER_SIZE:
            return NEED_DATA
        magic, ftype, flags, seq, length = struct.unpack(_HEADER, buf[:12])
        (header_crc,) = struct.unpack(">I", buf[12:16])
        if crc32(buf[:12]) != header_crc:
            return self._reject(HEADER_CRC)
        if flags != 0:
            return self._reject(FLAGS)
        if length > self.max_payload:
            return self._reject(OVERSIZE)
        end = HEADER_SIZE + length
        if len(buf) < end + TRAILER_SIZE:
            return NEED_DATA
        (frame_crc,) = struct.unpack(">I", buf[end:end + TRAILER_SIZE])
        if crc32(buf[:end]) != frame_crc:
            return self._reject(CRC)
        payload_bytes = buf[HEADER_SIZE:end]
        self._buf = buf[end + TRAILER_SIZE:]
        try:
            payload = cbor.loads(payload_bytes)
        except DecodeError:
            return BadFrame(PAYLOAD, end + TRAILER_SIZE, ftype, seq)
        if not isinstance(payload, dict):
            return BadFrame(PAYLOAD, end + TRAILER_SIZE, ftype, seq)
        return Frame(ftype, seq, payload)

    def _reject(self, reason):
        # Drop only the first byte: the next magic may sit inside this candidate.
        self._buf = self._buf[1:]
        skip = self._buf.find(MAGIC)
        if skip < 0:
            skip = len(self._buf) - _magic_prefix_len(self._buf)
        self._buf = self._buf[skip:]
        return BadFrame(reason, 1 + skip)


def _magic_prefix_len(buf):
    """Length of the longest suffix of `buf` that is a proper prefix of MAGIC."""
    for n in range(min(len(MAGIC) - 1, len(buf)), 0, -1):
        if buf[len(buf) - n:] == MAGIC[:n]:
            return n
    return 0


def decode_frame(data, max_payload=MAX_PAYLOAD):
    """Decode exactly one frame from `data`, or raise FrameError."""
    codec = FrameCodec(max_payload)
    if len(data) > codec.max_frame:
        raise FrameError(OVERSIZE, "frame is %d bytes, limit %d" % (len(data), codec.max_frame))
    codec.receive_data(data)
    event = codec.next_event()
    if event is NEED_DATA:
        raise FrameError(TRUNCATED, "frame truncated: %d bytes is not a whole frame" % len(data))
    if isinstance(event, BadFrame):
        raise FrameError(event.reason, "bad frame: " + event.reason)
    if codec.buffered:
        raise FrameError(GARBAGE, "%d bytes after the frame" % codec.buffered)
    return event
