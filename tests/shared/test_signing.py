"""daozhang.signing: the one Ed25519 verify and key loader every CPython part uses.

Invariant: ed25519_verify(public, message, signature) is True exactly for a
signature of `message` by `public`, never raises on outside bytes, and
agrees with the MicroPython firmware's verify (same argument order).
"""

import pytest

from daozhang.agent.core.errors import LocalError
from daozhang.firmware import ed25519 as firmware_ed25519
from daozhang.signing import ed25519_verify, generate_keypair, load_public_key, load_signer, raw_public


@pytest.fixture(scope="module")
def keypair(tmp_path_factory):
    prefix = str(tmp_path_factory.mktemp("keys") / "device")
    public = generate_keypair(prefix)
    return prefix, public, load_signer(prefix + ".key")


def test_a_good_signature_verifies_from_raw_bytes_and_from_a_loaded_key(keypair):
    prefix, public, signer = keypair
    signature = signer.sign(b"checkpoint")
    assert ed25519_verify(public, b"checkpoint", signature)
    assert ed25519_verify(load_public_key(prefix + ".pub"), b"checkpoint", signature)
    assert ed25519_verify(bytearray(public), memoryview(b"checkpoint"), bytes(signature))


@pytest.mark.parametrize("mutate", [
    lambda pub, msg, sig: (pub, msg + b"!", sig),                       # another message
    lambda pub, msg, sig: (pub, msg, sig[:63] + bytes([sig[63] ^ 1])),  # one bit of the signature
    lambda pub, msg, sig: (pub, msg, sig[:63]),                         # short signature
    lambda pub, msg, sig: (pub[:31], msg, sig),                         # malformed key
    lambda pub, msg, sig: (pub, sig, msg),                              # the other argument order
])
def test_anything_else_is_false_never_an_exception(keypair, mutate):
    _, public, signer = keypair
    assert ed25519_verify(*mutate(public, b"checkpoint", signer.sign(b"checkpoint"))) is False


def test_the_firmware_verifier_takes_the_same_arguments(keypair):
    _, public, signer = keypair
    signature = signer.sign(b"ack")
    assert firmware_ed25519.verify(public, b"ack", signature) is True
    assert ed25519_verify(public, b"ack", signature) is True


def test_a_key_that_is_not_pem_names_the_file(tmp_path):
    path = tmp_path / "junk.pub"
    path.write_bytes(b"not a key at all")
    with pytest.raises(LocalError, match="junk.pub is not a PEM public key"):
        load_public_key(str(path))
    with pytest.raises(LocalError, match="cannot read public key"):
        load_public_key(str(tmp_path / "missing.pub"))


def test_raw_public_round_trips(keypair):
    prefix, public, _ = keypair
    assert raw_public(load_public_key(prefix + ".pub")) == public
    assert raw_public(load_public_key(public)) == public
