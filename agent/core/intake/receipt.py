"""Receipt codes: a committed record, provable offline (docs/SPEC.md §5.5).

A receipt says "device DEV committed record SEQ with hash H" and carries what
a verifier needs to check that with the device's public key alone: the
covering checkpoint's signed fields and the record's RFC 6962 audit path to
that checkpoint's batch root (SPEC 3.6.1).  Its code is the deterministic
CBOR array

    [1, dev, seq, hash, cp_seq, head, wall_ms, boot_id, mono_ms, alg, kid,
     first, acked, released, state, path, sig]

in RFC 4648 base32 (upper case, no padding) after the prefix "DZR:", so it
prints as an alphanumeric-mode QR code.

`check(receipt)` does every structural check and returns the signed message;
the signature itself is checked by the caller (Ed25519 is not in the
portable core; agent/receipt.py does it on CPython).
Portable: CPython and MicroPython.
"""

import sys

from daozhang.agent.core import cbor
from daozhang.agent.core.errors import DecodeError, FindingError
from daozhang.agent.core.journal.checkpoint import ALG_NONE, root_from_path, signed_message

PREFIX = "DZR:"
VERSION = 1
FIELDS = ("v", "dev", "seq", "hash", "cp_seq", "head", "wall_ms", "boot_id", "mono_ms", "alg", "kid", "first",
          "acked", "released", "state", "path", "sig")
MAX_PATH = 16          # a batch holds at most 2^16 records
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


class ReceiptInvalid(FindingError):
    """A well-formed receipt that does not prove what it claims."""


class ReceiptUnsigned(ReceiptInvalid):
    """The covering checkpoint was written during a signer outage (SPEC 3.7)."""


# CPython fast path.  base64.b32encode is pure Python on 3.11 (a loop over
# 5-byte chunks, about 30 us for a receipt).  Instead the whole input becomes
# one integer and its 5-bit groups are spread to one byte each with a few
# big-integer mask-and-shift steps (group g must move left by 3*g bits: one
# step per bit of g, highest first, so moved blocks never overlap); then
# bytes.translate maps 0-31 to the alphabet.  About 5x faster.  The masks
# depend only on the group count, and receipts come in a handful of lengths.
_B32_TABLE = bytes(ord(_B32[i]) if i < 32 else 0 for i in range(256))
_SPREAD_PLANS = {}            # group count -> [(mask, shift), ...]
_SPREAD_PLANS_LIMIT = 64


def _spread_plan(groups):
    plan = []
    j = groups.bit_length() - 1
    while j >= 0:
        # Groups with bit j set come in runs of 2^j, [start, start + 2^j) for
        # start = k*2^(j+1) + 2^j; higher steps already moved a run left by
        # 3*k*2^(j+1) bits.  One mask covers all runs.
        block = 1 << j
        mask = 0
        for base in range(0, groups, 2 * block):
            start = base + block
            if start >= groups:
                break
            count = min(block, groups - start)
            mask |= ((1 << 5 * count) - 1) << (5 * start + 3 * base)
        plan.append((mask, 3 * block))
        j -= 1
    return plan


def _spread_b32encode(data):
    n = len(data)
    groups = (8 * n + 4) // 5
    plan = _SPREAD_PLANS.get(groups)
    if plan is None:
        plan = _spread_plan(groups)
        if len(_SPREAD_PLANS) >= _SPREAD_PLANS_LIMIT:
            _SPREAD_PLANS.clear()         # bounded; the lengths in use come back at once
        _SPREAD_PLANS[groups] = plan
    x = int.from_bytes(data, "big") << (5 * groups - 8 * n)
    for mask, shift in plan:
        moving = x & mask
        x = (x ^ moving) | (moving << shift)
    return x.to_bytes(groups, "big").translate(_B32_TABLE).decode("ascii")


# MicroPython: no bytes.translate; the portable loop below.
_fast_b32encode = _spread_b32encode if sys.implementation.name == "cpython" else None


def b32encode(data):
    """RFC 4648 base32, upper case, without the '=' padding."""
    if _fast_b32encode is not None:
        return _fast_b32encode(bytes(data))
    out = []
    bits = 0
    acc = 0
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append(_B32[(acc >> bits) & 31])
    if bits:
        out.append(_B32[(acc << (5 - bits)) & 31])
    return "".join(out)


def b32decode(text):
    acc = 0
    bits = 0
    out = bytearray()
    for c in text:
        v = _B32.find(c)
        if v < 0:
            raise DecodeError("receipt code: character outside base32 A-Z 2-7")
        acc = ((acc << 5) | v) & 0xFFF
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits >= 5 or (acc & ((1 << bits) - 1)):
        raise DecodeError("receipt code: bad base32 length or padding bits")
    return bytes(out)


def from_appended(dev, appended):
    """The receipt dict of one committed record (the journal's Appended)."""
    cp = appended.checkpoint
    return {"v": VERSION, "dev": dev, "seq": appended.seq, "hash": appended.hash,
            "cp_seq": appended.checkpoint_seq, "head": appended.checkpoint_head,
            "wall_ms": appended.checkpoint_wall_ms, "boot_id": appended.checkpoint_boot_id,
            "mono_ms": appended.checkpoint_mono_ms, "alg": cp["alg"], "kid": cp["kid"],
            "first": cp["first"], "acked": cp["acked"], "released": cp["released"],
            "state": cp["state"], "path": list(appended.audit_path), "sig": cp["sig"]}


def encode(receipt):
    return PREFIX + b32encode(cbor.dumps([receipt[k] for k in FIELDS]))


def _items(values):
    """The CBOR of `values`' items, without their array head (fewer than 24)."""
    return cbor.dumps(values)[1:]


def codes(dev, appended):
    """The receipt codes of one commit's records (its Appended list, one
    checkpoint), equal to encode(from_appended(dev, a)) for each: the items
    every record of the commit shares are encoded once, not once a record
    (the intake answers a batch of POS requests from one commit)."""
    if not appended:
        return []
    a0 = appended[0]
    cp = a0.checkpoint
    lead = bytes((0x80 + len(FIELDS),)) + _items([VERSION, dev])
    shared = _items([a0.checkpoint_seq, a0.checkpoint_head, a0.checkpoint_wall_ms,
                     a0.checkpoint_boot_id, a0.checkpoint_mono_ms, cp["alg"], cp["kid"],
                     cp["first"], cp["acked"], cp["released"], cp["state"]])
    sig = cbor.bytes_item(cp["sig"])
    out = []
    for a in appended:
        path = a.audit_path
        parts = [lead, cbor.uint_bytes(a.seq), cbor.bytes_item(a.hash), shared,
                 bytes((0x80 + len(path),))]          # at most MAX_PATH (16) hashes
        parts.extend(cbor.bytes_item(h) for h in path)
        parts.append(sig)
        out.append(PREFIX + b32encode(b"".join(parts)))
    return out


def _want(cond, what):
    if not cond:
        raise DecodeError("receipt code: " + what)


def decode(code):
    """Parse a receipt code (surrounding blanks ignored) into a dict."""
    _want(isinstance(code, str), "expected text")
    code = code.strip()
    _want(code.upper().startswith(PREFIX), "expected the prefix " + PREFIX)
    items = cbor.loads(b32decode(code[len(PREFIX):].upper()))
    _want(isinstance(items, list) and len(items) == len(FIELDS),
          "expected a list of %d items" % len(FIELDS))
    r = {}
    for i in range(len(FIELDS)):
        r[FIELDS[i]] = items[i]
    _want(r["v"] == VERSION, "version %r, expected %d" % (r["v"], VERSION))
    _want(isinstance(r["dev"], str), "dev is not text")
    _want(isinstance(r["boot_id"], bytes) and len(r["boot_id"]) == 8, "boot_id is not 8 bytes")
    for k in ("seq", "cp_seq", "wall_ms", "mono_ms", "alg", "first", "acked", "released", "state"):
        _want(isinstance(r[k], int) and not isinstance(r[k], bool) and r[k] >= 0, k + " is not a uint")
    for k in ("hash", "head"):
        _want(isinstance(r[k], bytes) and len(r[k]) == 32, k + " is not 32 bytes")
    _want(isinstance(r["kid"], bytes) and isinstance(r["sig"], bytes), "kid or sig is not bytes")
    _want(isinstance(r["path"], list) and len(r["path"]) <= MAX_PATH, "path is not a short list")
    for h in r["path"]:
        _want(isinstance(h, bytes) and len(h) == 32, "path entry is not 32 bytes")
    return r


def check(receipt):
    """Structural checks; return the checkpoint's signed message (SPEC 3.6)."""
    seq, first, cp_seq = receipt["seq"], receipt["first"], receipt["cp_seq"]
    if not (first <= seq < cp_seq):
        raise ReceiptInvalid("record %d is not covered by checkpoint %d (first %d)"
                             % (seq, cp_seq, first))
    if receipt["alg"] == ALG_NONE:
        raise ReceiptUnsigned("record %d was committed during a signer outage: its checkpoint "
                              "%d is unsigned; a later recovery checkpoint vouches for it" % (seq, cp_seq))
    if seq == cp_seq - 1 and receipt["head"] != receipt["hash"]:
        raise ReceiptInvalid("record %d is the last before checkpoint %d but its hash is not "
                             "the chain head" % (seq, cp_seq))
    root = root_from_path(receipt["hash"], seq - first, cp_seq - first, receipt["path"])
    if root is None:
        raise ReceiptInvalid("audit path of %d hashes does not fit leaf %d of %d"
                             % (len(receipt["path"]), seq - first, cp_seq - first))
    return signed_message(receipt["dev"], cp_seq, receipt["head"], receipt["wall_ms"],
                          receipt["boot_id"], receipt["mono_ms"], receipt["kid"], receipt["alg"], first, root, receipt["acked"],
                          receipt["released"], receipt["state"])
