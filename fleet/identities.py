"""Device identities for a simulated fleet, issued by the fleet CA and cached.

Each simulated terminal is a real device to the broker and the backend: a
TLS client certificate from the fleet PKI (CN = its device id, so the
shipped ACL's `%u` rules apply to it as to a real terminal) and its own
Ed25519 journal key (the backend verifies its checkpoints with it).

Issuing goes through host_tools/pki/ca.py's own certificate builder
(`_leaf`, the same extensions and EKU as `daozhang pki device`), but in one
batch: the CA's ledger (issued.jsonl) is read once and appended once with
one fsync, not once per certificate (pki.issue_device re-reads the whole
ledger for every device, O(n^2) at 10,000).  Measured here: about 1 ms of
CPU per device (an EC P-256 key and one ECDSA signature by the CA).

The cache directory holds, per device, `tls/<id>.pem` (certificate then
key, mode 0600) and, in `fleet.json`, the journal key seeds and the CA's
certificate fingerprint: a cache made by another CA is refused, never
mixed.  A second run with the same or fewer terminals issues nothing.
"""

import hashlib
import json
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID

from daozhang.agent.core.errors import LocalError
from daozhang.signing import Ed25519Signer
from daozhang.host_tools.pki import ca as pki
from daozhang.files import atomic_write

INDEX = "fleet.json"


class FleetCacheError(LocalError):
    """The identity cache cannot be used (another CA, unreadable)."""


class Identity:
    """One simulated terminal's identity: device id, TLS PEM path, journal key."""

    __slots__ = ("device_id", "tls_pem", "seed")

    def __init__(self, device_id, tls_pem, seed):
        self.device_id = device_id
        self.tls_pem = tls_pem
        self.seed = seed

    def signer(self):
        """The terminal's checkpoint signer (Ed25519, libsodium when present)."""
        return Ed25519Signer(Ed25519PrivateKey.from_private_bytes(self.seed))

    def public_bytes(self):
        return Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes_raw()


def device_id(prefix, index):
    return "%s-%06d" % (prefix, index)


def _ca_fingerprint(ca):
    return hashlib.sha256(pki._cert_pem(ca.cert)).hexdigest()


def _load_index(cache_dir, fingerprint):
    path = os.path.join(cache_dir, INDEX)
    if not os.path.exists(path):
        return {"ca": fingerprint, "devices": {}}
    try:
        with open(path) as f:
            index = json.load(f)
    except (OSError, ValueError) as exc:
        raise FleetCacheError("%s: unreadable (%s): delete the cache directory to reissue" % (path, exc))
    if index.get("ca") != fingerprint:
        raise FleetCacheError("%s: issued by another CA (fingerprint %s..., this CA %s...): use "
                              "another --cache directory" % (path, str(index.get("ca"))[:12],
                                                             fingerprint[:12]))
    return index


def _save_index(cache_dir, index):
    path = os.path.join(cache_dir, INDEX)
    atomic_write(path, json.dumps(index, sort_keys=True), durable=True)


def ensure_identities(ca_dir, cache_dir, count, prefix="sim", progress=None):
    """Identities for devices prefix-000000 .. prefix-(count-1): from the cache,
    issuing (and caching) the missing ones.  Returns (identities, issued_now)."""
    ca = pki.load_ca(ca_dir)
    os.makedirs(os.path.join(cache_dir, "tls"), mode=0o700, exist_ok=True)
    index = _load_index(cache_dir, _ca_fingerprint(ca))
    known = index["devices"]
    tls = os.path.join(cache_dir, "tls")
    missing = [name for name in (device_id(prefix, i) for i in range(count))
               if name not in known or not os.path.exists(os.path.join(tls, name + ".pem"))]
    if missing:
        _issue(ca, cache_dir, missing, known, progress)
        _save_index(cache_dir, index)
    out = []
    for i in range(count):
        name = device_id(prefix, i)
        out.append(Identity(name, os.path.join(cache_dir, "tls", name + ".pem"),
                            bytes.fromhex(known[name])))
    return out, len(missing)


def _issue(ca, cache_dir, names, known, progress):
    taken = {e["cn"]: e["kind"] for e in pki.issued(ca.directory)}
    for name in names:
        pki.check_identity(name, "device id")
        kind = taken.get(name)
        if kind not in (None, pki.KIND_DEVICE):
            raise pki.IdentityConflict("%r is already issued as a %s identity" % (name, kind))
    ledger = []
    for n, name in enumerate(names):
        key = pki._new_key()
        cert = pki._leaf(ca, name, pki.KIND_DEVICE, key, ExtendedKeyUsageOID.CLIENT_AUTH)
        path = os.path.join(cache_dir, "tls", name + ".pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pki._cert_pem(cert) + pki._key_pem(key))
        known[name] = os.urandom(32).hex()
        ledger.append({"serial": format(cert.serial_number, "x"), "kind": pki.KIND_DEVICE,
                       "cn": name, "not_after": cert.not_valid_after_utc.isoformat()})
        if progress is not None and (n + 1) % 500 == 0:
            progress(n + 1, len(names))
    pki.append_ledger(ca.directory, pki.INDEX, ledger)
