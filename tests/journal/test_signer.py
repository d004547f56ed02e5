"""The agent's Ed25519 signer.

Invariants: libsodium and cryptography give the same signature bytes (RFC
8032 signatures are deterministic), so which one signs never shows in a
journal; a FileSigner whose key file appears later announces that key's kid
in the same commit it signs, never a commit signed under a missing kid.
"""

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daozhang import signing as signer_mod
from daozhang.agent.core.journal import checkpoint, record, ring_storage
from daozhang.agent.core.journal.ring import Clock
from daozhang.signing import Ed25519Signer, FileSigner, generate_keypair, load_public_key
from dztest.journal_kit import fresh_image, read_records


def test_sodium_and_cryptography_sign_the_same_bytes(monkeypatch):
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    fast = Ed25519Signer(key)
    assert fast._sodium_key is not None          # PyNaCl is a dependency: the fast path is taken
    monkeypatch.setattr(signer_mod, "_sodium_keypair", None)
    slow = Ed25519Signer(key)
    assert slow._sodium_key is None
    for message in (b"", b"x", bytes(range(256)) * 3):
        assert fast.sign(message) == slow.sign(message) == key.sign(message)
    assert fast.kid == slow.kid


def test_file_signer_whose_key_appears_later_signs_under_its_own_kid(tmp_path):
    prefix = str(tmp_path / "dev")
    signer = FileSigner(prefix + ".key")
    assert signer.kid is None
    storage = ring_storage.MemoryStorage(fresh_image())
    ring = ring_storage.open_ring(storage)
    clock = Clock(1_764_115_200_000, b"\x01" * 8, 5)
    ring_storage.commit(storage, ring, [(record.TYPE_TRANSACTION, {"n": 1})], clock, signer)
    generate_keypair(prefix)
    ring_storage.commit(storage, ring, [(record.TYPE_TRANSACTION, {"n": 2})], clock, signer)
    records = [r for r in read_records(storage, ring) if r.type == record.TYPE_CHECKPOINT]
    assert [r.payload["state"] for r in records] == [checkpoint.STATE_OUTAGE, checkpoint.STATE_RECOVERY]
    last = records[1]
    assert last.payload["kid"] == signer.kid == checkpoint.key_id(signer.public_bytes)
    message = checkpoint.message_for(last.payload, last.seq, last.prev, last.wall_ms, last.boot_id, last.mono_ms)
    load_public_key(prefix + ".pub").verify(last.payload["sig"], message)     # raises if wrong
