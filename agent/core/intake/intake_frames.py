"""POS intake frames, sans-IO (docs/SPEC.md §5.1-5.3).

A frame is a 4-byte big-endian length n (1 <= n <= MAX_FRAME) followed by n
bytes of UTF-8 JSON holding one object.  `FrameDecoder` turns bytes into
events and never touches a socket:

    dec.receive_data(chunk)      # b"" means the peer closed its side
    ev = dec.next_event()        # a Message, NEED_DATA or CLOSED

A frame whose length is 0 or above the limit, or an end of stream inside a
frame, is fatal: next_event raises FrameError (code frame_too_large,
empty_frame or truncated_frame) and the decoder is dead (ERROR): no resync
is attempted, the connection is closed after one error response.  A frame
that is complete but holds no JSON object, or repeats a key in an object, is not fatal: it becomes a Message
whose `error` is a FrameError (bad_json), and the next frame is read as usual.

`parse_request(message)` checks the request envelope and returns a Request.
Portable: CPython and MicroPython (json and struct only).
"""

import json
import struct

from daozhang.agent.core import strict_json
from daozhang.agent.core.errors import LocalError, RemoteError

VERSION = 1
MAX_FRAME = 65536
HEADER = 4
OPS = ("submit", "ping")
MAX_ID_TEXT = 64

NEED_DATA = "NEED_DATA"
CLOSED = "CLOSED"

OPEN = "open"
ERROR = "error"
DONE = "closed"
# (state, what happened) -> next state: SPEC 5.1.  Anything else: LocalError.
TRANSITIONS = {
    (OPEN, "frame"): OPEN,
    (OPEN, "bad_json"): OPEN,
    (OPEN, "need_data"): OPEN,
    (OPEN, "eof"): DONE,
    (OPEN, "fatal"): ERROR,
    (DONE, "eof"): DONE,
}


class FrameError(RemoteError):
    """The peer sent bytes that break SPEC 5; `code` is what goes on the wire."""

    def __init__(self, code, message, request_id=None):
        super().__init__(message)
        self.code = code
        self.request_id = request_id


class Message:
    __slots__ = ("obj", "error")

    def __init__(self, obj, error=None):
        self.obj = obj
        self.error = error


class Request:
    __slots__ = ("id", "op", "txn")

    def __init__(self, request_id, op, txn):
        self.id = request_id
        self.op = op
        self.txn = txn


def _sorted_json(obj):
    # MicroPython's json.dumps has no sort_keys and its dicts are unordered.
    if isinstance(obj, dict):
        return "{" + ",".join(json.dumps(k) + ":" + _sorted_json(obj[k]) for k in sorted(obj)) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(_sorted_json(v) for v in obj) + "]"
    return json.dumps(obj)


try:
    # CPython: one encoder for every frame (json.dumps with options builds a
    # new JSONEncoder per call, a third of an answer's encoding time).
    _compact_sorted = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode
except (AttributeError, TypeError):   # MicroPython: no JSONEncoder, no sort_keys
    _compact_sorted = _sorted_json


def encode(obj):
    """One frame holding `obj` as compact JSON, keys sorted (stable bytes)."""
    text = _compact_sorted(obj)
    body = text.encode("utf-8")
    if not 1 <= len(body) <= MAX_FRAME:
        raise LocalError("frame body of %d bytes, limit %d" % (len(body), MAX_FRAME))
    return struct.pack(">I", len(body)) + body


def decode_body(body):
    """JSON object from a frame body, or FrameError(bad_json); a key repeated
    in any object is bad_json too (strict_json: parsers disagree on it)."""
    try:
        obj = strict_json.loads(body.decode("utf-8"))
    except strict_json.DuplicateKey as exc:
        raise FrameError("bad_json", "frame body: " + str(exc) + "; send each key once") from None
    except Exception:
        # A foreign parser: whatever it raises (ValueError, UnicodeError,
        # RecursionError on deep nesting) is the peer's fault, and ours to name.
        raise FrameError("bad_json", "frame body is not UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise FrameError("bad_json", "frame body is JSON but not an object")
    return obj


class FrameDecoder:
    def __init__(self, max_frame=MAX_FRAME):
        self.max_frame = max_frame
        self.state = OPEN
        self._buf = bytearray()
        self._eof = False

    def _go(self, what):
        nxt = TRANSITIONS.get((self.state, what))
        if nxt is None:
            raise LocalError("intake frames: %s in state %s" % (what, self.state))
        self.state = nxt

    def receive_data(self, data):
        if self.state != OPEN:
            raise LocalError("intake frames: data after the stream ended (%s)" % self.state)
        if data:
            self._buf.extend(data)
        else:
            self._eof = True

    @property
    def buffered(self):
        """Bytes received but not yet returned as a frame."""
        return len(self._buf)

    def next_event(self):
        if self.state == DONE:
            return CLOSED
        if self.state == ERROR:
            raise LocalError("intake frames: decoder is dead after a fatal frame error")
        if len(self._buf) >= HEADER:
            n = struct.unpack(">I", bytes(self._buf[:HEADER]))[0]
            if n == 0 or n > self.max_frame:
                self._go("fatal")
                if n == 0:
                    raise FrameError("empty_frame", "frame length 0, expected 1-%d" % self.max_frame)
                raise FrameError("frame_too_large", "frame length %d, limit %d" % (n, self.max_frame))
            if len(self._buf) >= HEADER + n:
                body = bytes(self._buf[HEADER:HEADER + n])
                self._buf = self._buf[HEADER + n:]
                try:
                    obj = decode_body(body)
                except FrameError as exc:
                    self._go("bad_json")
                    return Message(None, exc)
                self._go("frame")
                return Message(obj)
        if self._eof:
            if self._buf:
                self._go("fatal")
                raise FrameError("truncated_frame", "stream ended %d bytes into a frame" % len(self._buf))
            self._go("eof")
            return CLOSED
        self._go("need_data")
        return NEED_DATA


def _request_id(obj):
    rid = obj.get("id")
    if isinstance(rid, bool):
        return None
    if isinstance(rid, int) and 0 <= rid <= 9007199254740991:
        return rid
    if isinstance(rid, str) and 1 <= len(rid) <= MAX_ID_TEXT:
        return rid
    return None


def parse_request(message):
    """Request from a Message, or FrameError(bad_request | unknown_op)."""
    if message.error is not None:
        raise message.error
    obj = message.obj
    rid = _request_id(obj)
    if rid is None:
        raise FrameError("bad_request", "`id` must be an integer 0..2^53-1 or 1-%d characters"
                         % MAX_ID_TEXT)
    if obj.get("v", VERSION) != VERSION:
        raise FrameError("bad_version", "protocol version must be %d" % VERSION, rid)
    op = obj.get("op")
    if op not in OPS:
        raise FrameError("unknown_op", "`op` must be one of " + ", ".join(OPS), rid)
    for key in obj:
        if key not in ("v", "id", "op", "txn"):
            raise FrameError("bad_request", "unknown envelope key (allowed: v, id, op, txn)", rid)
    txn = obj.get("txn")
    if op == "submit" and txn is None:
        raise FrameError("bad_request", "`submit` needs a `txn` object", rid)
    return Request(rid, op, txn)


def ok_response(request_id, result):
    return encode({"v": VERSION, "id": request_id, "ok": True, "result": result})


def error_response(request_id, code, message, field=None):
    err = {"code": code, "message": message}
    if field:
        err["field"] = field
    return encode({"v": VERSION, "id": request_id, "ok": False, "error": err})
