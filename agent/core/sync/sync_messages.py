"""MQTT payloads of the sync protocol (docs/SPEC.md §6).

Up:   `receipts`  {"v": 1, "dev": id, "frames": [frame, ...]}   (SPEC 6.3)
Down: `acks`      {"v": 1, "kind": ..., "dev": id, ..., "kid", "sig"}  (SPEC 6.4)

Every down message is checked here in one fixed order (decode, schema,
device, key id, signature) before any kind-specific rule looks at it; the
kind-specific freshness rules (replay, beyond head, head hash) live with the
state they need, in sync.py.  `decode_down` raises DownRejected and nothing
else, whatever the bytes.  The signature check is an input (`verify(pub,
message, sig) -> bool`): cryptography on CPython, a C module on a board.
Portable: CPython and MicroPython.
"""

from daozhang.agent.core import cbor
from daozhang.agent.core.errors import DecodeError, RemoteError

VERSION = 1
ACK_DOMAIN = "daozhang/ack/v1"
HASH_SIZE = 32
KID_SIZE = 8
SIG_SIZE = 64
MAX_DEVICE_ID = 64

# Rejection reasons (SPEC 6.5), counted per reason by the agent.
MALFORMED = "malformed"
SCHEMA = "schema"
UNKNOWN_KIND = "unknown_kind"
WRONG_DEVICE = "wrong_device"
UNKNOWN_KEY = "unknown_key"
BAD_SIGNATURE = "bad_signature"
REPLAY = "replay"
BEYOND_HEAD = "beyond_head"
HEAD_MISMATCH = "head_mismatch"
REASONS = (MALFORMED, SCHEMA, UNKNOWN_KIND, WRONG_DEVICE, UNKNOWN_KEY, BAD_SIGNATURE,
           REPLAY, BEYOND_HEAD, HEAD_MISMATCH)


class DownRejected(RemoteError):
    """A down message that must change nothing; `reason` is one of REASONS."""

    def __init__(self, reason, message):
        super().__init__("%s: %s" % (reason, message))
        self.reason = reason


# Field checks: (name, predicate, what it should be).
def _uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 63


def _bytes_of(n):
    return lambda v: isinstance(v, bytes) and len(v) == n


def _text(v):
    return isinstance(v, str) and 0 < len(v) <= MAX_DEVICE_ID


def _any_bytes(v):
    return isinstance(v, bytes) and len(v) <= 256


def field_problem(fields, msg, prefix="", skip=()):
    """The first of `fields` (name -> (predicate, what)) that `msg` lacks or
    gets wrong, as text naming it (with `prefix`), or None."""
    for name in fields:
        if name in skip:
            continue
        check, what = fields[name]
        if name not in msg:
            return "%s%s: missing (expected %s)" % (prefix, name, what)
        if not check(msg[name]):
            return "%s%s: expected %s, got %r" % (prefix, name, what, msg[name])
    return None


def _receipts_signed(msg):
    return cbor.dumps([ACK_DOMAIN, "receipts", msg["dev"], msg["to"], msg["head"], msg["at"],
                       msg["kid"]])


# kind -> {"fields": {name: (predicate, description)}, "signed": fn(msg) -> bytes}.
# decode_down's default: receipts acks only.  The agent's sync core passes
# these plus settlement_ack.DOWN_KIND (core/sync/sync_core.py DOWN_KINDS); nothing is
# added to this table at import time.
KINDS = {
    "receipts": {
        "fields": {
            "v": (lambda v: v == VERSION, "1"),
            "kind": (lambda v: v == "receipts", '"receipts"'),
            "dev": (_text, "a device id"),
            "to": (_uint, "an unsigned integer"),
            "head": (_bytes_of(HASH_SIZE), "32 bytes"),
            "at": (_uint, "Unix milliseconds"),
            "kid": (_bytes_of(KID_SIZE), "8 bytes"),
            "sig": (_bytes_of(SIG_SIZE), "a 64-byte Ed25519 signature"),
        },
        "signed": _receipts_signed,
    },
}


def down_kinds(extra):
    """KINDS plus `extra` ({kind: {"fields", "signed"}}), for decode_down.

    Every kind must carry v, kind, dev, kid and sig, so the common checks
    (device, key, signature) apply to it unchanged."""
    out = dict(KINDS)
    for kind in extra:
        for name in ("v", "kind", "dev", "kid", "sig"):
            if name not in extra[kind]["fields"]:
                raise ValueError("down kind %r lacks the common field %r" % (kind, name))
        out[kind] = extra[kind]
    return out


def receipts_ack_message(dev, to, head, at, kid):
    """The bytes the backend signs for a receipts ack (SPEC 6.4)."""
    return _receipts_signed({"dev": dev, "to": to, "head": head, "at": at, "kid": kid})


def encode_receipts_ack(dev, to, head, at, kid, sig):
    return cbor.dumps({"v": VERSION, "kind": "receipts", "dev": dev, "to": to, "head": head,
                       "at": at, "kid": kid, "sig": sig})


def decode_down(payload, device_id, backend_pub, backend_kid, verify, kinds=None):
    """Decode and authenticate one down message of `kinds` (default KINDS);
    return its map.

    Order: CBOR, map, kind, exact schema, device, key id, signature.  The
    first failure raises DownRejected; nothing else escapes.
    """
    if not isinstance(payload, (bytes, bytearray)) or len(payload) > 4096:
        raise DownRejected(MALFORMED, "payload is not 1..4096 bytes")
    try:
        msg = cbor.loads(bytes(payload))
    except DecodeError as exc:
        raise DownRejected(MALFORMED, "not deterministic CBOR (%s)" % exc)
    except Exception as exc:  # a decoder bug must not take the agent down
        raise DownRejected(MALFORMED, "undecodable (%s)" % type(exc).__name__)
    if not isinstance(msg, dict):
        raise DownRejected(SCHEMA, "expected a map, got %s" % type(msg).__name__)
    kinds = KINDS if kinds is None else kinds
    kind = msg.get("kind")
    spec = kinds.get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise DownRejected(UNKNOWN_KIND, "kind %r, expected one of %s"
                           % (kind, ", ".join(sorted(kinds))))
    fields = spec["fields"]
    for name in msg:
        if name not in fields:
            raise DownRejected(SCHEMA, "unexpected key %r in a %s message" % (name, kind))
    for name in fields:
        check, what = fields[name]
        if name not in msg:
            raise DownRejected(SCHEMA, "%s: missing (expected %s)" % (name, what))
        if not check(msg[name]):
            raise DownRejected(SCHEMA, "%s: expected %s" % (name, what))
    if msg["dev"] != device_id:
        raise DownRejected(WRONG_DEVICE, "message for device %r, this is %r" % (msg["dev"], device_id))
    if msg["kid"] != backend_kid:
        raise DownRejected(UNKNOWN_KEY, "signed by key %s, expected the backend key %s"
                           % (msg["kid"].hex(), backend_kid.hex()))
    try:
        ok = verify(backend_pub, spec["signed"](msg), msg["sig"])
    except Exception:
        ok = False
    if not ok:
        raise DownRejected(BAD_SIGNATURE, "signature does not verify with the backend key %s"
                           % backend_kid.hex())
    return msg


# -- up ----------------------------------------------------------------------------

def encode_receipts(dev, frames):
    """The receipts payload: consecutive raw journal frames (SPEC 6.3)."""
    return cbor.dumps({"v": VERSION, "dev": dev, "frames": frames})


def receipts_overhead(dev, count):
    """An upper bound of the payload bytes besides the frames themselves."""
    return 32 + len(dev) + 5 * count


def decode_receipts(payload):
    """(dev, [frame bytes]) of a receipts payload, or DecodeError."""
    if not isinstance(payload, (bytes, bytearray)):
        raise DecodeError("receipts payload is not bytes")
    try:
        msg = cbor.loads(bytes(payload))
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError("receipts payload undecodable (%s)" % type(exc).__name__)
    if not isinstance(msg, dict) or set(msg) != {"v", "dev", "frames"}:
        raise DecodeError("receipts payload: expected a map with v, dev, frames")
    if msg["v"] != VERSION:
        raise DecodeError("receipts payload: version %r, expected %d" % (msg["v"], VERSION))
    if not _text(msg["dev"]):
        raise DecodeError("receipts payload: dev is not a device id")
    frames = msg["frames"]
    if not isinstance(frames, list) or not frames or not all(isinstance(f, bytes) for f in frames):
        raise DecodeError("receipts payload: frames must be a non-empty list of byte strings")
    return msg["dev"], frames


def encode_status(dev, state, at, extra=None):
    body = {"v": VERSION, "dev": dev, "state": state, "at": at}
    if extra:
        for k in extra:
            body[k] = extra[k]
    return cbor.dumps(body)
