"""Ed25519 keys: generate, store (0600), load, sign, verify.

The one home of key files and Ed25519 for every CPython process: the agent
signs its journal and checks the backend's acks and a technician's
signature; the backend signs acks; the host tools read key files.  (The
journal verifier keeps its own reader of the spec but verifies with
`ed25519_verify` from here.)  MicroPython has firmware/ed25519.py.

The portable ring only needs `.alg`, `.kid` and `.sign(message)`; this is
the CPython signer.  Signing and verifying go through libsodium (PyNaCl):
it signs in about 19 us where `cryptography` takes about 32 us, and the
signature is one per commit.  Ed25519 signatures are deterministic (RFC
8032), so both produce the same bytes.

`cryptography` is imported only when a key must be generated or a key file
is not in the one form `daozhang keys new` writes (docs/DESIGN.md "The
daemon's memory"): its Rust module alone is 8.7 MiB of the daemon's
resident memory, and the daemon only ever reads its own key, the backend's
and a technician's.  Those are RFC 8410 files whose DER is a fixed 12- or
16-byte prefix and the 32 key bytes (`_pem_key`); any other form (another
algorithm, an encrypted key, PKCS8 v2) goes to `cryptography` as before,
with its messages.  A key that cannot be read or used raises
SignerUnavailable, which the ring turns into a signer outage (SPEC 3.7)
instead of refusing transactions.
"""

import base64
import binascii
import os

try:
    from nacl.bindings import crypto_sign as _sodium_sign, crypto_sign_open as _sodium_open, \
        crypto_sign_seed_keypair as _sodium_keypair
    from nacl.exceptions import BadSignatureError as _BadSignature
except ImportError:  # PyNaCl missing: cryptography signs and verifies
    _sodium_sign = _sodium_open = _sodium_keypair = _BadSignature = None

from daozhang.agent.core.errors import LocalError
from daozhang.agent.core.journal import checkpoint
from daozhang.agent.core.journal.ring import SignerUnavailable

# RFC 8410: the DER of an Ed25519 PKCS8 v1 private key (section 7) and of
# its SubjectPublicKeyInfo (section 4), up to the 32 key bytes.
_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def _crypto():
    """The `cryptography` names this module uses, imported on first need."""
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    return InvalidSignature, UnsupportedAlgorithm, serialization, ed25519


def _pem_key(data, label, prefix):
    """The 32 key bytes of a PEM block `label` whose DER is `prefix` + key,
    or None for anything else (left to `cryptography`)."""
    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    text = bytes(data).strip()
    if not (text.startswith(begin) and text.endswith(end)):
        return None
    try:
        der = base64.b64decode(b"".join(text[len(begin):-len(end)].split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(der) != len(prefix) + 32 or not der.startswith(prefix):
        return None
    return der[len(prefix):]


def raw_public(public_key):
    """32 raw bytes of a `cryptography` Ed25519 public key (raw bytes pass through)."""
    if isinstance(public_key, (bytes, bytearray, memoryview)):
        return bytes(public_key)
    _, _, serialization, _ = _crypto()
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_bytes):
    """Human-checkable key id: the SPEC 3.6 kid in hex, grouped."""
    kid = checkpoint.key_id(public_bytes).hex()
    return ":".join(kid[i:i + 4] for i in range(0, len(kid), 4))


def generate_keypair(prefix):
    """Write PREFIX.key (PKCS8 PEM, mode 0600) and PREFIX.pub; return raw public bytes."""
    _, _, serialization, ed25519 = _crypto()
    key = ed25519.Ed25519PrivateKey.generate()
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


def _read_public(item):
    """(data, name) of a public key given as a path, bytes or a key object."""
    data, name = item, "<bytes>"
    if isinstance(item, (str, os.PathLike)):
        name = os.fspath(item)
        try:
            with open(name, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise LocalError("cannot read public key %s: %s" % (name, exc.strerror)) from None
    return data, name


def load_public_bytes(item):
    """32 raw Ed25519 public key bytes from a PEM file path, PEM bytes or 32
    raw bytes, without importing `cryptography` for the form `daozhang keys
    new` writes; LocalError naming the input otherwise."""
    if isinstance(item, (str, os.PathLike, bytes, bytearray, memoryview)):
        data, name = _read_public(item)
        data = bytes(data)
        if len(data) == 32:
            return data
        raw = _pem_key(data, b"PUBLIC KEY", _SPKI_PREFIX)
        if raw is not None:
            return raw
        item = data if name == "<bytes>" else name
    return raw_public(load_public_key(item))


def load_public_key(item):
    """An Ed25519 public key (`cryptography`) from a PEM file path, PEM
    bytes, 32 raw bytes or a key object; LocalError naming the input otherwise."""
    _, UnsupportedAlgorithm, serialization, ed25519 = _crypto()
    if isinstance(item, ed25519.Ed25519PublicKey):
        return item
    data, name = _read_public(item)
    data = bytes(data)
    if len(data) == 32:
        return ed25519.Ed25519PublicKey.from_public_bytes(data)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm, TypeError):
        raise LocalError("%s is not a PEM public key (expected PREFIX.pub from `daozhang keys new`, "
                         "or 32 raw bytes)" % name) from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise LocalError("%s is a %s key, expected Ed25519" % (name, type(key).__name__))
    return key


class SeedSigner:
    """Signs with libsodium from the key's 32-byte seed (RFC 8032)."""

    alg = checkpoint.ALG_ED25519

    def __init__(self, seed):
        self.public_bytes, self._sodium_key = _sodium_keypair(bytes(seed))
        self.kid = checkpoint.key_id(self.public_bytes)

    def sign(self, message):
        # crypto_sign returns signature || message: the signature is the first 64 bytes.
        return _sodium_sign(message, self._sodium_key)[:64]


class Ed25519Signer:
    """Signs with a `cryptography` private key object (through libsodium
    when the key exports its seed)."""

    alg = checkpoint.ALG_ED25519

    def __init__(self, private_key):
        self._key = private_key
        self.public_bytes = raw_public(private_key.public_key())
        self.kid = checkpoint.key_id(self.public_bytes)
        self._sodium_key = _sodium_secret(private_key, self.public_bytes)

    def sign(self, message):
        if self._sodium_key is not None:
            return _sodium_sign(message, self._sodium_key)[:64]
        return self._key.sign(message)


def _sodium_secret(private_key, public_bytes):
    """libsodium's 64-byte secret key for `private_key`, or None to sign with cryptography."""
    if _sodium_keypair is None:
        return None
    _, _, serialization, _ = _crypto()
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


def _read_key(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise LocalError("cannot read key %s: %s (create one with `daozhang keys new`)"
                         % (path, exc.strerror)) from None


def load_signer(path):
    """A signer from a PKCS8 PEM private key file (PREFIX.key): libsodium
    straight from the seed for the form `daozhang keys new` writes."""
    data = _read_key(path)
    seed = _pem_key(data, b"PRIVATE KEY", _PKCS8_PREFIX)
    if seed is not None and _sodium_keypair is not None:
        return SeedSigner(seed)
    return Ed25519Signer(_parse_private_key(path, data))


def load_private_key(path):
    """The Ed25519 private key (`cryptography`) in a PKCS8 PEM file written by `daozhang keys new`."""
    return _parse_private_key(path, _read_key(path))


def _parse_private_key(path, data):
    _, UnsupportedAlgorithm, serialization, ed25519 = _crypto()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise LocalError("%s is not an unencrypted PEM private key" % path) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise LocalError("%s is not an Ed25519 key" % path)
    return key


def ed25519_verify(public, message, signature):
    """True if `signature` (64 bytes) is `public`'s over `message`; False
    for a bad signature or a malformed key.  `public`: 32 raw bytes, or an
    Ed25519PublicKey already loaded (a verifier checking many signatures).
    The argument order is the portable core's (SyncCore, DeviceSession)
    and firmware/ed25519.verify's.  Raw bytes verify through libsodium, so
    the daemon never loads `cryptography` to check an ack."""
    if _sodium_open is not None and isinstance(public, (bytes, bytearray, memoryview)):
        return _sodium_verify(bytes(public), message, signature)
    InvalidSignature, _, _, ed25519 = _crypto()
    try:
        if not isinstance(public, ed25519.Ed25519PublicKey):
            public = ed25519.Ed25519PublicKey.from_public_bytes(bytes(public))
        if len(signature) != 64:
            return False
        public.verify(bytes(signature), bytes(message))
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def _sodium_verify(public, message, signature):
    try:
        if len(public) != 32 or len(signature) != 64:
            return False
        _sodium_open(bytes(signature) + bytes(message), public)
        return True
    except (_BadSignature, ValueError, TypeError):
        return False
