"""Trusted keys, the signed checkpoint message and the batch root (SPEC 3.6, 3.8).

Keys come as PEM SubjectPublicKeyInfo files (`daozhang keys new` writes
PREFIX.pub), PEM bytes, or raw 32-byte Ed25519 public keys.  A key the
verifier cannot load is the technician's input error (BadTrustInput, exit 2).
"""

from hashlib import sha256
from itertools import repeat
from operator import add

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from daozhang.host_tools.verify.errors import BadTrustInput
from daozhang import signing
from daozhang.agent.core.errors import LocalError

ALG_NONE = 0
ALG_ED25519 = 1
CHECKPOINT_DOMAIN = "daozhang/checkpoint/v1"


def key_id(raw_public):
    """SPEC 3.6: the first 8 bytes of SHA-256 of the raw 32-byte public key."""
    return sha256(raw_public).digest()[:8]


def load_public_key(item):
    """(kid, Ed25519PublicKey) from a path, PEM bytes, 32 raw bytes or a key object."""
    try:
        key = signing.load_public_key(item)
    except (LocalError, ValueError) as exc:
        raise BadTrustInput(str(exc)) from None
    return key_id(signing.raw_public(key)), key


def load_public_keys(items):
    """{kid: Ed25519PublicKey} for every key given."""
    keys = {}
    for item in items or ():
        kid, key = load_public_key(item)
        keys[kid] = key
    return keys


def key_from_raw(raw):
    """An Ed25519PublicKey from a rotation record's `pub`, or None if invalid."""
    if len(raw) != 32:
        return None
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return None


def checkpoint_message(dev, seq, head, wall_ms, boot_id, mono_ms, payload):
    """SPEC 3.6: the deterministic CBOR array a checkpoint signature covers."""
    return cbor2.dumps([CHECKPOINT_DOMAIN, dev, seq, head, wall_ms, boot_id, mono_ms, payload["kid"], payload["alg"],
                        payload["first"], payload["root"], payload["acked"], payload["released"],
                        payload["state"]])


def signature_valid(key, signature, message):
    return signing.ed25519_verify(key, message, signature)


def batch_root(hashes):
    """SPEC 3.6.1: the RFC 6962 Merkle tree hash over record hashes.

    Built bottom-up: pairing left to right and carrying an odd last node up
    unchanged gives the same tree as RFC 6962's split at the largest power of
    two below n.
    """
    if not hashes:
        return sha256(b"").digest()
    # map() keeps the per-hash work in C: 2n SHA-256 calls per commit of n records.
    # Copying a context already fed the 0x00/0x01 prefix is cheaper than a new
    # sha256() (an OpenSSL fetch each) plus a concatenation.
    level = _prefixed(_LEAF_CTX, hashes)
    while len(level) > 1:
        odd = level[-1] if len(level) % 2 else None
        level = _prefixed(_NODE_CTX, list(map(add, level[0::2], level[1::2])))
        if odd is not None:
            level.append(odd)
    return level[0]


def _prefixed(ctx, items):
    """[sha256(prefix + item).digest() for item in items], the prefix already in ctx."""
    contexts = list(map(_copy, repeat(ctx, len(items))))
    list(map(_update, contexts, items))
    return list(map(_finish, contexts))


_LEAF_CTX, _NODE_CTX = sha256(b"\x00"), sha256(b"\x01")   # RFC 6962 leaf and node prefixes
_copy, _update, _finish = type(_LEAF_CTX).copy, type(_LEAF_CTX).update, type(_LEAF_CTX).digest
