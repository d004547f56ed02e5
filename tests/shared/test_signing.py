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


def test_the_daemons_key_path_needs_no_cryptography_and_signs_the_same_bytes(keypair):
    """load_signer on a `keys new` file signs through libsodium straight from
    the PEM's seed: the same signatures as `cryptography`, the same kid."""
    from daozhang.signing import Ed25519Signer, SeedSigner, load_private_key, load_public_bytes
    prefix, public, signer = keypair
    assert isinstance(signer, SeedSigner) and signer.public_bytes == public
    reference = Ed25519Signer(load_private_key(prefix + ".key"))
    assert reference.kid == signer.kid
    for message in (b"", b"checkpoint", bytes(range(256)) * 4):
        assert signer.sign(message) == load_private_key(prefix + ".key").sign(message)
    assert load_public_bytes(prefix + ".pub") == public == raw_public(load_public_key(prefix + ".pub"))
    with open(prefix + ".pub", "rb") as f:
        assert load_public_bytes(f.read()) == public
    assert load_public_bytes(public) == public


def test_other_key_forms_still_go_to_cryptography_and_its_errors(tmp_path):
    """Anything but the RFC 8410 form (another algorithm, a PEM whose body
    is not base64) is left to `cryptography`: loaded, or refused by name."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from daozhang.signing import load_public_bytes
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "ec.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp_path / "ec.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (tmp_path / "bad.pub").write_bytes(b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n")
    with pytest.raises(LocalError, match="ec.key is not an Ed25519 key"):
        load_signer(str(tmp_path / "ec.key"))
    with pytest.raises(LocalError, match="expected Ed25519"):
        load_public_bytes(str(tmp_path / "ec.pub"))
    with pytest.raises(LocalError, match="bad.pub is not a PEM public key"):
        load_public_bytes(str(tmp_path / "bad.pub"))
