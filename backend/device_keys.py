"""Which key signs a device's checkpoints, following key rotations (SPEC 3.8).

A device rotates its signing key by journaling a key-rotation record (type
7: alg, kid, pub) and committing it under a checkpoint signed with its
current key; every later checkpoint is signed by the new key.  The backend
adopts the new key only when that happens: a checkpoint signed by the
current key, verified, whose batch (`first`..seq-1) covers the rotation
record.  Until then the rotation is pending and a checkpoint signed by the
announced key is `wrong_key`, exactly as if no rotation had been written.

The rotation record and its covering checkpoint may arrive in different
messages (a sync batch can end between them), so the pending rotation is
also looked up among stored records by the caller (`Ingestor`).
"""

from daozhang.agent.core.journal import checkpoint
from daozhang.signing import load_public_key


class Rotation:
    """A key-rotation record seen but not yet vouched for."""
    __slots__ = ("seq", "kid", "pub")

    def __init__(self, seq, kid, pub):
        self.seq, self.kid, self.pub = seq, kid, pub

    def __repr__(self):
        return "Rotation(seq=%d, kid=%s)" % (self.seq, self.kid.hex())


def rotation_from_payload(seq, payload):
    """Rotation from a type-7 payload (decoded CBOR: bytes fields, or the
    stored JSON form: hex text), or a string saying what is wrong."""
    if not isinstance(payload, dict):
        return "key rotation %d: payload is not a map" % seq
    alg, kid, pub = payload.get("alg"), payload.get("kid"), payload.get("pub")
    try:
        kid = bytes.fromhex(kid) if isinstance(kid, str) else kid
        pub = bytes.fromhex(pub) if isinstance(pub, str) else pub
    except ValueError:
        return "key rotation %d: kid or pub is not hex" % seq
    if alg != checkpoint.ALG_ED25519:
        return "key rotation %d: alg %r is not Ed25519 (%d)" % (seq, alg, checkpoint.ALG_ED25519)
    if not isinstance(pub, bytes) or len(pub) != 32 or not isinstance(kid, bytes):
        return "key rotation %d: pub must be 32 bytes" % seq
    if checkpoint.key_id(pub) != kid:
        return "key rotation %d: kid %s is not the key id of its pub" % (seq, kid.hex())
    try:
        load_public_key(pub)
    except ValueError:
        return "key rotation %d: pub is not an Ed25519 key" % seq
    return Rotation(seq, kid, pub)


class KeyState:
    """The key a batch is checked against, and a rotation waiting for its
    vouching checkpoint.  `adopted` is the rotation taken up in this batch
    (the caller persists it once the batch is stored)."""

    def __init__(self, public_bytes, pending=None):
        self._use(public_bytes)
        self.pending = pending
        self.adopted = None

    def _use(self, public_bytes):
        self.public_bytes = bytes(public_bytes)
        self.public_key = load_public_key(self.public_bytes)
        self.kid = checkpoint.key_id(self.public_bytes)

    def rotation_seen(self, rotation):
        self.pending = rotation

    def covers_pending(self, first, seq):
        """Would a checkpoint first..seq vouch for the pending rotation?  (Its
        signature is then checked at once: it ends the old key's run.)"""
        rotation = self.pending
        return rotation is not None and type(first) is int and first <= rotation.seq < seq

    def checkpoint_verified(self, first, seq):
        """A checkpoint first..seq signed by the current key verified: if it
        covers the pending rotation, the rotated-to key signs from now on."""
        rotation = self.pending
        if rotation is not None and first <= rotation.seq < seq:
            self._use(rotation.pub)
            self.adopted = rotation
            self.pending = None
