"""Checkpoints: what is signed, the batch root and audit paths (SPEC 3.6).

The signature covers the chain head, so one signature vouches for every
record before it; the batch root lets a receipt prove one record of a group
commit with log2(batch) hashes instead of the whole batch.
Portable: CPython and MicroPython.
"""

import hashlib

from daozhang.agent.core import cbor
from daozhang.agent.core.errors import LocalError

DOMAIN = "daozhang/checkpoint/v1"
ALG_NONE = 0
ALG_ED25519 = 1
STATE_NORMAL = 0
STATE_OUTAGE = 1
STATE_RECOVERY = 2
KID_SIZE = 8


def key_id(public_key_bytes):
    """SPEC 3.6: first 8 bytes of SHA-256 of the raw public key."""
    return hashlib.sha256(public_key_bytes).digest()[:KID_SIZE]


def signed_message(dev, seq, head, wall_ms, boot_id, mono_ms, kid, alg, first, root, acked, released, state):
    # Every field of the checkpoint record but `sig` is signed, so even the
    # newest checkpoint, which no later record chains, cannot be altered.
    return cbor.dumps([DOMAIN, dev, seq, head, wall_ms, boot_id, mono_ms, kid, alg, first, root, acked,
                       released, state])


_MESSAGE_HEAD = b"\x8e" + cbor.text_item(DOMAIN)      # array of 14, then the domain
_HASH_HEAD = b"\x58\x20"                               # byte string of 32


def encode_parts(dev_item, seq, head, times, kid, alg, first, root, acked, released, state):
    """(signed message, payload before sig, payload after sig), canonical CBOR.

    The writer's path: built field by field, each field shared by the message
    and the payload encoded once, neither through the generic encoder's walk.
    The payload map is before + cbor.bytes_item(sig) + after.  Byte for byte
    what signed_message() and cbor.dumps(payload) give (tests/journal/test_checkpoint.py).
    `times` is record.times_bytes(wall_ms, boot_id, mono_ms), already built
    for the commit's records; `dev_item` is cbor.text_item(dev).
    """
    uint = cbor.uint_bytes
    if len(head) != 32 or len(root) != 32:
        raise LocalError("checkpoint: head and root must be 32 bytes")
    for value in (seq, alg, first, acked, released, state):
        if type(value) is not int or value < 0:
            raise LocalError("checkpoint: %r is not a non-negative integer" % (value,))
    kid_item, alg_item, first_item = cbor.bytes_item(kid), uint(alg), uint(first)
    acked_item, released_item, state_item = uint(acked), uint(released), uint(state)
    message = b"".join((_MESSAGE_HEAD, dev_item, uint(seq), _HASH_HEAD, head, times, kid_item, alg_item,
                        first_item, _HASH_HEAD, root, acked_item, released_item, state_item))
    # Payload keys in canonical order: shorter first, then bytewise (SPEC 2).
    before = b"".join((b"\xa9\x63alg", alg_item, b"\x63dev", dev_item, b"\x63kid", kid_item, b"\x63sig"))
    after = b"".join((b"\x64root\x58\x20", root, b"\x65acked", acked_item, b"\x65first", first_item,
                      b"\x65state", state_item, b"\x68released", released_item))
    return message, before, after


def message_for(payload, seq, head, wall_ms, boot_id, mono_ms):
    """The signed message of a checkpoint record given its payload and body fields."""
    return signed_message(payload["dev"], seq, head, wall_ms, boot_id, mono_ms, payload["kid"], payload["alg"],
                          payload["first"], payload["root"], payload["acked"], payload["released"],
                          payload["state"])


def _leaf(h):
    return hashlib.sha256(b"\x00" + h).digest()


def _node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


class MerkleBatch:
    """RFC 6962 tree over one commit's record hashes, each node hashed once.

    `root()` hashes the tree bottom up and keeps its levels; `path(i)` reads
    the siblings off them (no hashing): the root plus every record's audit
    path cost n - 1 node hashes, not O(n log n) (the intake answers every
    record of a commit with a receipt).
    """

    def __init__(self, hashes):
        self.hashes = hashes
        self._levels = None

    def root(self):
        """MTH over all hashes, bottom up: pairing left to right and carrying
        an odd last node up unchanged is RFC 6962's split at the largest power
        of two below n."""
        hashes = self.hashes
        if not hashes:
            return hashlib.sha256(b"").digest()
        level = [_leaf(h) for h in hashes]
        levels = [level]
        while len(level) > 1:
            paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) & 1:
                paired.append(level[-1])
            level = paired
            levels.append(level)
        self._levels = levels
        return level[0]

    def path(self, index):
        """Audit path for leaf `index`: sibling hashes, bottom up.  A node
        carried up unpaired (the odd last one) has no sibling at its level."""
        if self._levels is None:
            self.root()
        frames = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                frames.append(level[sibling])
            index >>= 1
        return frames


def batch_root(hashes):
    """RFC 6962 Merkle tree hash over record hashes (SPEC 3.6.1)."""
    return MerkleBatch(hashes).root()


def audit_path(hashes, index):
    """RFC 6962 audit path for leaf `index`: sibling hashes, bottom up."""
    return MerkleBatch(hashes).path(index)


def root_from_path(leaf_hash, index, count, path):
    """Recompute the batch root from one record hash and its audit path (RFC 9162 2.1.3.2)."""
    if index >= count:
        return None
    fn, sn = index, count - 1
    r = _leaf(leaf_hash)
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return r
