"""The board's pure-Python Ed25519 agrees with the host's (cryptography)
on any seed and message, and a journal it signs passes host_tools/verify/journal.py
with no finding (an outage-free chain of signed checkpoints)."""

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from daozhang.agent.core.journal import ring_storage
from daozhang.firmware import ed25519, sha512
from daozhang.host_tools.verify.journal import verify_journal
from portable import kit

import hashlib


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=600))
def test_signature_equals_cryptographys(seed, message):
    # Invariant: Ed25519 is deterministic, so the bytes must be identical.
    host = Ed25519PrivateKey.from_private_bytes(seed)
    sig = ed25519.sign(seed, message)
    assert sig == host.sign(message)
    Ed25519PublicKey.from_public_bytes(ed25519.public_key(seed)).verify(sig, message)
    assert ed25519.verify(host.public_key().public_bytes_raw(), message, sig)
    assert not ed25519.verify(host.public_key().public_bytes_raw(), message + b"!", sig)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=1000))
def test_portable_sha512_equals_hashlibs(data):
    assert sha512.sha512_portable(data) == hashlib.sha512(data).digest()


def test_journal_signed_on_the_board_verifies_on_the_host():
    signer = ed25519.Ed25519Signer(bytes(range(32)))
    storage = ring_storage.MemoryStorage(kit.fresh_image(segment_count=8))
    ring = ring_storage.open_ring(storage)
    clock = kit.StepClock()
    for n in range(60):
        ring_storage.commit(storage, ring, [(1, {"n": n, "memo": "q" * 40})], clock.now(), signer)
    report = verify_journal(bytes(storage.data), [signer.public_bytes], all_signatures=True)
    assert report.ok, report.findings
    wrong = verify_journal(bytes(storage.data), [ed25519.public_key(b"\x01" * 32)])
    assert not wrong.ok
