"""Verify one receipts message from a device before anything is stored (SPEC 6.7).

`check_batch(device_id, public_key, payload)` decodes the payload and walks
its frames: framing and CRC, record body, consecutive sequence numbers, the
hash chain inside the batch, and every checkpoint: device, key id, cursors,
and its batch root when every record it covers is in this batch (otherwise
the chain does the vouching: the signed head hashes back through every
`prev`).  Links to records stored earlier are the store's job (store_batch
/ _advance: forks and chain breaks).

Signatures (SPEC 6.7.1): by default only where they matter, the newest
Ed25519 checkpoint of each chained run: the last one signed by each key
(the one that vouches for a rotation ends its key's run), and the last one
before the end of the batch or before the first failure.  Every earlier
checkpoint of the run is covered by that signature through the chain.  If
one of those signatures fails, the batch is checked again with every
signature (`all_signatures=True`, the audit mode), so a tampered batch gets
exactly the audit mode's findings and stored prefix.

The result lists the records that may be stored (the prefix up to the last
good checkpoint before the first failure, or everything when all is well)
and findings for what failed.  Nothing here raises on bad device bytes.
"""

import binascii
import hashlib
import struct

import cbor2

from daozhang.agent.core import card_data
from daozhang.agent.core.errors import DecodeError
from daozhang.agent.core.journal import checkpoint
from daozhang.agent.core.journal import record
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.backend.device_keys import KeyState, rotation_from_payload
from daozhang.signing import ed25519_verify

_HEADER = struct.Struct(">BBI")
_CRC = struct.Struct(">I")

# Finding kinds (backend-schema findings.kind), besides the store's fork/chain_break.
MALFORMED = "malformed"
WRONG_DEVICE = "wrong_device"
UNKNOWN_DEVICE = "unknown_device"
BAD_FRAME = "bad_frame"
GAP = "gap"
CHAIN = "chain_break"
WRONG_KEY = "wrong_key"
BAD_SIGNATURE = "bad_signature"
BAD_CHECKPOINT = "bad_checkpoint"
BAD_ROTATION = "bad_rotation"


class Finding:
    __slots__ = ("kind", "seq", "detail", "evidence")

    def __init__(self, kind, seq, detail, evidence=None):
        self.kind = kind
        self.seq = seq
        # Stored and logged: no card number from the device's bytes (SPEC 4.4).
        self.detail, self.evidence = card_data.masked_value(detail), card_data.masked_bytes(evidence)

    def dedup_key(self, device_id):
        digest = hashlib.sha256(self.evidence or self.detail.encode()).hexdigest()[:32]
        return "%s:%s:%s:%s" % (self.kind, device_id, self.seq, digest)

    def __repr__(self):
        return "Finding(%s, seq=%s, %s)" % (self.kind, self.seq, self.detail)


class BatchCheck:
    __slots__ = ("records", "findings", "first", "end", "frames", "keys")

    def __init__(self):
        self.records = []     # dicts for Store.store_batch
        self.findings = []
        self.first = None     # seq of the first frame offered
        self.end = None       # one past the last frame offered
        self.frames = 0
        self.keys = None      # KeyState: the key after this batch, a rotation adopted


def jsonable(value):
    """A record payload as JSON-able data: bytes become lowercase hex.

    Anything outside the journal's CBOR subset (SPEC 2: floats, tags, ...)
    raises DecodeError, so what cbor2 let through is still refused here."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")   # PostgreSQL JSON cannot hold NUL
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if not -2 ** 64 <= value < 2 ** 64:
            raise DecodeError("integer out of the 64-bit range")
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise DecodeError("map key %r is not text" % (k,))
            out[k.replace("\x00", "\ufffd")] = jsonable(v)
        return out
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    raise DecodeError("value of type %s is not in the journal's CBOR subset" % type(value).__name__)


_SCALARS = (str, int)


def _payload_for_store(payload):
    """jsonable() with a fast path for flat maps of text and integers (a
    transaction payload): one loop, no call per value."""
    out = {}
    for k, v in payload.items():
        t = type(v)
        if t is str and "\x00" not in v:
            out[k] = v
        elif t is int and -2 ** 64 <= v < 2 ** 64:
            out[k] = v
        elif t is bytes:
            out[k] = v.hex()
        else:
            out[k] = jsonable(v)
        if type(k) is not str:
            raise DecodeError("map key %r is not text" % (k,))
        if "\x00" in k:
            out[k.replace("\x00", "\ufffd")] = out.pop(k)
    return out


class _Rec:
    __slots__ = ("seq", "type", "flags", "prev", "wall_ms", "boot_id", "mono_ms", "payload", "hash", "json")


def decode_frame(frame):
    """One whole frame (SPEC 3.3, 3.4) -> _Rec, or DecodeError.

    The backend's fast path: struct + binascii.crc32 + hashlib + cbor2 (C),
    then the body's shape; the portable decoder in agent/core/journal/record.py is
    several times slower in pure Python.  Canonical CBOR form is left to the
    host verifier: the record hash covers the exact bytes either way."""
    n = len(frame)
    if n < record.OVERHEAD + 1 or frame[:2] != record.MAGIC:
        raise DecodeError("bad frame magic or size %d" % n)
    rtype, flags, length = _HEADER.unpack_from(frame, 2)
    if length + record.OVERHEAD != n or length > record.MAX_BODY:
        raise DecodeError("frame is %d bytes, its header says %d" % (n, length + record.OVERHEAD))
    if flags & ~record.FLAG_OUTAGE:
        raise DecodeError("unknown flags 0x%02x" % flags)
    if rtype not in record.TYPE_NAMES:
        raise DecodeError("unknown record type %d" % rtype)
    head = frame[:-record.CRC_SIZE]
    if _CRC.unpack_from(frame, n - 4)[0] != binascii.crc32(head) & 0xFFFFFFFF:
        raise DecodeError("CRC mismatch")
    try:
        body = cbor2.loads(head[record.HEADER_SIZE:])
    except Exception as exc:   # cbor2 raises several types on junk
        raise DecodeError("body is not CBOR (%s)" % type(exc).__name__)
    if not isinstance(body, list) or len(body) != 6:
        raise DecodeError("body is not a 6-item array")
    seq, prev, wall_ms, boot_id, mono_ms, payload = body
    if not (type(seq) is int and 0 <= seq < 2 ** 63 and isinstance(prev, bytes) and len(prev) == 32
            and type(wall_ms) is int and wall_ms >= 0 and isinstance(boot_id, bytes)
            and len(boot_id) == record.BOOT_ID_SIZE and type(mono_ms) is int and mono_ms >= 0
            and isinstance(payload, dict)):
        raise DecodeError("body fields have the wrong types")
    rec = _Rec()
    rec.seq, rec.type, rec.flags, rec.prev, rec.wall_ms, rec.payload = seq, rtype, flags, prev, wall_ms, payload
    rec.boot_id, rec.mono_ms = boot_id, mono_ms
    rec.boot_id, rec.mono_ms = boot_id, mono_ms
    rec.hash = hashlib.sha256(head).digest()
    rec.json = _payload_for_store(card_data.masked_value(payload))   # SPEC 4.4: no PAN stored
    return rec


class _Deferred:
    """The newest checkpoint of the current run whose signature is not yet
    checked: (record, the key that must have signed it)."""
    __slots__ = ("rec", "public_key")

    def __init__(self):
        self.rec = None
        self.public_key = None

    def hold(self, rec, public_key):
        self.rec, self.public_key = rec, public_key

    def settle(self):
        """Check the held signature (the run ends here); True if it verifies
        or nothing is held."""
        rec, self.rec = self.rec, None
        return rec is None or _signature_ok(rec, self.public_key)


def _signature_ok(rec, public_key):
    p = rec.payload
    try:
        message = checkpoint.message_for(p, rec.seq, rec.prev, rec.wall_ms, rec.boot_id, rec.mono_ms)
    except Exception:
        return False
    return isinstance(p["sig"], bytes) and ed25519_verify(public_key, message, p["sig"])


def check_batch(topic_device, public_key_bytes, payload, pending_rotation=None, all_signatures=False):
    """BatchCheck of one receipts payload from `topic_device`, whose
    checkpoints are signed by `public_key_bytes` until a key rotation
    (`pending_rotation`: one stored earlier, or None) is vouched for;
    `out.keys.adopted` then names the rotation taken up.

    `all_signatures`: verify every checkpoint's signature (audit); by
    default only the newest of each chained run (module docstring)."""
    out = _walk(topic_device, public_key_bytes, payload, pending_rotation, all_signatures)
    if out is None:     # a run's newest signature failed: find where, as the audit does
        out = _walk(topic_device, public_key_bytes, payload, pending_rotation, True)
    return out


def _walk(topic_device, public_key_bytes, payload, pending_rotation, all_signatures):
    """BatchCheck, or None when (newest-signature mode) a deferred signature
    does not verify."""
    out = BatchCheck()
    deferred = _Deferred()
    keys = out.keys = KeyState(public_key_bytes, pending_rotation)
    try:
        dev, frames = msgs.decode_receipts(payload)
    except DecodeError as exc:
        out.findings.append(Finding(MALFORMED, None, "receipts payload: %s" % exc,
                                    bytes(payload[:4096]) if isinstance(payload, bytes) else None))
        return out
    if dev != topic_device:
        out.findings.append(Finding(WRONG_DEVICE, None, "payload names device %r on %r's topic"
                                    % (dev, topic_device)))
        return out
    out.frames = len(frames)
    decoded = []
    hashes = {}
    last_good = 0       # records before this index are vouched or may be stored
    failure = None
    for i, frame in enumerate(frames):
        try:
            rec = decode_frame(frame)
        except DecodeError as exc:
            failure = Finding(BAD_FRAME, decoded[-1].seq + 1 if decoded else None,
                              "frame %d of the batch: %s" % (i, exc), frame)
            break
        if out.first is None:
            out.first = rec.seq
        if decoded:
            prev = decoded[-1]
            if rec.seq != prev.seq + 1:
                failure = Finding(GAP, rec.seq, "batch jumps from seq %d to %d" % (prev.seq, rec.seq),
                                  frame)
                break
            if rec.prev != prev.hash:
                failure = Finding(CHAIN, rec.seq, "record %d's prev is not record %d's hash"
                                  % (rec.seq, prev.seq), frame)
                break
        if rec.type == record.TYPE_KEY_ROTATION:
            rotation = rotation_from_payload(rec.seq, rec.payload)
            if isinstance(rotation, str):
                failure = Finding(BAD_ROTATION, rec.seq, rotation, frame)
                break
            keys.rotation_seen(rotation)
        elif rec.type == record.TYPE_CHECKPOINT:
            signed = rec.payload.get("alg") == checkpoint.ALG_ED25519
            # Verify now in the audit, or when this checkpoint vouches for a
            # rotation (its key's run ends here); otherwise hold it: a later
            # checkpoint of the run covers it through the chain.
            now = all_signatures or (signed and keys.covers_pending(rec.payload.get("first"), rec.seq))
            problem = _check_checkpoint(rec, topic_device, keys.public_key, keys.kid, hashes, now)
            if problem is not None:
                failure = Finding(problem[0], rec.seq, problem[1], frame)
                break
            if signed:
                if now:
                    deferred.rec = None         # vouched for by this verified one
                else:
                    deferred.hold(rec, keys.public_key)
                keys.checkpoint_verified(rec.payload["first"], rec.seq)
            last_good = i + 1
        decoded.append(rec)
        hashes[rec.seq] = rec.hash
    if not deferred.settle():      # the newest of the run, before the end or the failure
        return None
    if failure is None:
        keep = decoded
    else:
        out.findings.append(failure)
        keep = decoded[:last_good]
        if keys.pending is not None and keys.pending is not pending_rotation \
                and not (keep and keys.pending.seq <= keep[-1].seq):
            keys.pending = pending_rotation   # seen only in records we do not store
    if decoded:
        out.end = decoded[-1].seq + 1
    for rec, frame in zip(keep, frames):
        out.records.append({"seq": rec.seq, "type": rec.type, "hash": rec.hash,
                            "prev_hash": rec.prev, "frame": bytes(frame),
                            "payload": rec.json})
    return out


def _check_checkpoint(rec, device_id, public_key, kid, hashes, verify_signature=True):
    """(finding kind, detail) if this checkpoint is not right, else None.
    Without `verify_signature` everything but the Ed25519 check itself."""
    p = rec.payload
    try:
        alg, ck_kid, dev, first, root = p["alg"], p["kid"], p["dev"], p["first"], p["root"]
        acked, released, state, sig = p["acked"], p["released"], p["state"], p["sig"]
    except KeyError as exc:
        return BAD_CHECKPOINT, "checkpoint %d lacks %s" % (rec.seq, exc)
    if dev != device_id:
        return WRONG_DEVICE, "checkpoint %d names device %r" % (rec.seq, dev)
    if not (isinstance(first, int) and isinstance(acked, int) and isinstance(released, int)
            and 0 <= first <= rec.seq and released <= acked <= rec.seq):
        return BAD_CHECKPOINT, "checkpoint %d: first %r, acked %r, released %r out of order" \
            % (rec.seq, first, acked, released)
    if alg == checkpoint.ALG_NONE:
        if state != checkpoint.STATE_OUTAGE or not rec.flags & record.FLAG_OUTAGE:
            return BAD_CHECKPOINT, "unsigned checkpoint %d outside a signer outage" % rec.seq
    elif alg == checkpoint.ALG_ED25519:
        if ck_kid != kid:
            return WRONG_KEY, "checkpoint %d signed by key %s, the device's key is %s" \
                % (rec.seq, bytes(ck_kid).hex(), kid.hex())
        if not isinstance(sig, bytes):
            return BAD_SIGNATURE, "checkpoint %d: signature is not bytes" % rec.seq
        if verify_signature:
            try:
                message = checkpoint.message_for(p, rec.seq, rec.prev, rec.wall_ms, rec.boot_id,
                                                 rec.mono_ms)
            except Exception as exc:
                return BAD_CHECKPOINT, "checkpoint %d: %s" % (rec.seq, exc)
            if not ed25519_verify(public_key, message, sig):
                return BAD_SIGNATURE, "checkpoint %d: signature does not verify" % rec.seq
    else:
        return BAD_CHECKPOINT, "checkpoint %d: unknown alg %r" % (rec.seq, alg)
    if all(s in hashes for s in range(first, rec.seq)):
        if checkpoint.batch_root([hashes[s] for s in range(first, rec.seq)]) != root:
            return BAD_CHECKPOINT, "checkpoint %d: batch root does not match records %d..%d" \
                % (rec.seq, first, rec.seq - 1)
    return None
