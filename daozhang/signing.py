"""Ed25519 keys: generate, store (0600), load, sign, verify.

The one home of key files and Ed25519 for every CPython process: the agent
signs its journal and checks the backend's acks and a technician's
signature; the backend signs acks; the host tools read key files.  (The
journal verifier keeps its own reader of the spec but verifies with
`ed25519_verify` from here.)  MicroPython has firmware/ed25519.py.

The portable ring only needs `.alg`, `.kid` and `.sign(message)`; this is
the CPython signer.  Keys are files read and written with `cryptography`;
signing goes through libsodium (PyNaCl) when it is importable, because it
signs in about 19 us where `cryptography` takes about 32 us, and the
signature is one per commit.  Ed25519 signatures are deterministic (RFC 8032),
so both produce the same bytes.  A key that cannot be read or used raises
SignerUnavailable, which the ring turns into a signer outage (SPEC 3.7)
instead of refusing transactions.
"""

import os

try:
    from nacl.bindings import crypto_sign as _sodium_sign, crypto_sign_seed_keypair as _sodium_keypair
except ImportError:  # PyNaCl missing: cryptography signs
    _sodium_sign = _sodium_keypair = None

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from daozhang.agent.core.errors import LocalError
from daozhang.agent.core.journal import checkpoint
from daozhang.agent.core.journal.ring import SignerUnavailable


def raw_public(public_key):
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_bytes):
    """Human-checkable key id: the SPEC 3.6 kid in hex, grouped."""
    kid = checkpoint.key_id(public_bytes).hex()
    return ":".join(kid[i:i + 4] for i in range(0, len(kid), 4))


def generate_keypair(prefix):
    """Write PREFIX.key (PKCS8 PEM, mode 0600) and PREFIX.pub; return raw public bytes."""
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    key_path = prefix + ".key"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    with open(prefix + ".pub", "wb") as f:
        f.write(public_pem)
    return raw_public(key.public_key())


def load_public_key(item):
    """An Ed25519 public key from a PEM file path, PEM bytes, 32 raw bytes
    or a key object; LocalError naming the input otherwise."""
    if isinstance(item, Ed25519PublicKey):
        return item
    data, name = item, "<bytes>"
    if isinstance(item, (str, os.PathLike)):
        name = os.fspath(item)
        try:
            with open(name, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise LocalError("cannot read public key %s: %s" % (name, exc.strerror)) from None
    data = bytes(data)
    if len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm, TypeError):
        raise LocalError("%s is not a PEM public key (expected PREFIX.pub from `daozhang keys new`, "
                         "or 32 raw bytes)" % name) from None
    if not isinstance(key, Ed25519PublicKey):
        raise LocalError("%s is a %s key, expected Ed25519" % (name, type(key).__name__))
    return key


class Ed25519Signer:
    alg = checkpoint.ALG_ED25519

    def __init__(self, private_key):
        self._key = private_key
        self.public_bytes = raw_public(private_key.public_key())
        self.kid = checkpoint.key_id(self.public_bytes)
        self._sodium_key = _sodium_secret(private_key, self.public_bytes)

    def sign(self, message):
        if self._sodium_key is not None:
            # crypto_sign returns signature || message: the signature is the first 64 bytes.
            return _sodium_sign(message, self._sodium_key)[:64]
        return self._key.sign(message)


def _sodium_secret(private_key, public_bytes):
    """libsodium's 64-byte secret key for `private_key`, or None to sign with cryptography."""
    if _sodium_keypair is None:
        return None
    try:
        seed = private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                         serialization.NoEncryption())
        public, secret = _sodium_keypair(seed)
    except Exception:  # a key that will not export its seed (e.g. held by a token): keep cryptography
        return None
    if public != public_bytes:      # never sign with a key other than the one whose kid we announce
        return None
    return secret


class FileSigner:
    """Loads the key from its file on first use and again after a failure.

    Until the file can be read, `kid` is None and every sign() raises
    SignerUnavailable, so the journal keeps committing in a flagged outage
    (SPEC 3.7).  Reading `kid` retries the load: the ring reads it before it
    builds the signed message, so a key that has come back is announced and
    used in the same commit.
    """

    alg = checkpoint.ALG_ED25519

    def __init__(self, path):
        self.path = path
        self._signer = None
        self._try_load()

    @property
    def kid(self):
        if self._signer is None:
            self._try_load()
        return None if self._signer is None else self._signer.kid

    @property
    def public_bytes(self):
        return None if self._signer is None else self._signer.public_bytes

    def _try_load(self):
        try:
            self._signer = load_signer(self.path)
        except LocalError:
            self._signer = None
            return False
        return True

    def sign(self, message):
        if self._signer is None and not self._try_load():
            raise SignerUnavailable(self.path)
        return self._signer.sign(message)


def load_signer(path):
    """Ed25519Signer from a PKCS8 PEM private key file (PREFIX.key)."""
    return Ed25519Signer(load_private_key(path))


def load_private_key(path):
    """The Ed25519 private key in a PKCS8 PEM file written by `daozhang keys new`."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise LocalError("cannot read key %s: %s (create one with `daozhang keys new`)"
                         % (path, exc.strerror)) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise LocalError("%s is not an unencrypted PEM private key" % path) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LocalError("%s is not an Ed25519 key" % path)
    return key


def ed25519_verify(public, message, signature):
    """True if `signature` (64 bytes) is `public`'s over `message`; False
    for a bad signature or a malformed key.  `public`: 32 raw bytes, or an
    Ed25519PublicKey already loaded (a verifier checking many signatures).
    The argument order is the portable core's (SyncCore, DeviceSession)
    and firmware/ed25519.verify's."""
    try:
        if not isinstance(public, Ed25519PublicKey):
            public = Ed25519PublicKey.from_public_bytes(bytes(public))
        if len(signature) != 64:
            return False
        public.verify(bytes(signature), bytes(message))
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False
