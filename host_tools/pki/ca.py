"""The fleet PKI: one CA for device identities, and the certificates it signs.

The broker trusts this CA, and only this CA, for client certificates, and
takes each client's MQTT username from its certificate's CN
(`use_identity_as_username`), so the CN *is* the identity the ACL checks:
a device's CN is its device id, the backend's CN is its backend name.

Keys are EC P-256 (fast TLS handshakes on small terminals), written 0600 and
never overwritten.  The CA directory keeps an index of what it issued
(issued.jsonl) so one name can never be both a device and a backend: a
device called "backend" would otherwise inherit the backend's ACL.

Layout (README.md):
    CA_DIR/ca.crt  CA_DIR/ca.key  CA_DIR/issued.jsonl
    CA_DIR/crl.pem CA_DIR/revoked.jsonl  (revocations: crl.py)
    PREFIX.crt     PREFIX.key        (server, device or backend)
"""

import datetime
import ipaddress
import os
import re
from collections import namedtuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from daozhang.agent.core import device_id as device_id_rule
from daozhang.files import fsync_directory
from daozhang.host_tools.pki.crl import write_crl
from daozhang.host_tools.pki.errors import CertificateRejected, IdentityConflict, PkiError
from daozhang.host_tools.pki.ledger import (INDEX, KIND_BACKEND, KIND_DEVICE, KIND_SERVER, append_ledger, issued,
                                            utcnow)

CA_CERT = "ca.crt"
CA_KEY = "ca.key"

CA_DAYS = 20 * 365
LEAF_DAYS = 5 * 365
# Start validity a little in the past: a terminal whose clock lags by minutes
# must not see a freshly issued broker certificate as "not yet valid".
BACKDATE = datetime.timedelta(hours=1)

# A client CN is one MQTT topic level: the ACL substitutes it into
# `daozhang/v1/%u/...`, so a '/', '+' or '#' in a CN would widen what that
# identity may touch.  The device id rule (agent/core/device_id.py) keeps
# them out, and applies to backend names too.

CertPaths = namedtuple("CertPaths", "cert key")
CertificateAuthority = namedtuple("CertificateAuthority", "directory cert key")


def check_identity(name, what="identity"):
    why = device_id_rule.problem(name)
    if why is not None:
        raise PkiError("%s %s (it becomes one MQTT topic level)" % (what, why))
    return name


def _new_key():
    return ec.generate_private_key(ec.SECP256R1())


def _write_new(path, data, mode):
    """Create `path` with `mode` from the start (no window where a key is
    world-readable), refuse to overwrite, fsync file and directory."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise PkiError("%s already exists: refusing to overwrite it (choose another --out)" % path)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)  # umask may have cleared bits we asked for
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_directory(path)


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_pair(prefix, cert, key):
    paths = CertPaths(prefix + ".crt", prefix + ".key")
    for path in paths:
        if os.path.exists(path):
            raise PkiError("%s already exists: refusing to overwrite it (choose another --out)" % path)
    _write_new(paths.key, _key_pem(key), 0o600)
    _write_new(paths.cert, _cert_pem(cert), 0o644)
    return paths


def _validity(days, not_before, not_after, now):
    now = now or utcnow()
    start = not_before or (now - BACKDATE)
    end = not_after or (now + datetime.timedelta(days=days))
    if end <= start:
        raise PkiError("validity ends %s, before it starts %s" % (end.isoformat(), start.isoformat()))
    return start, end


# -- the CA -------------------------------------------------------------------

def create_ca(directory, name="daozhang fleet CA", days=CA_DAYS, now=None):
    """Create CA_DIR/ca.crt and ca.key (0600). Refuses an existing CA."""
    key = _new_key()
    start, end = _validity(days, None, None, now)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "daozhang")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    os.makedirs(directory, exist_ok=True)
    _write_pair(os.path.join(directory, "ca"), cert, key)
    ca = CertificateAuthority(directory, cert, key)
    # An empty CRL from the start: the broker's `crlfile` must always exist.
    write_crl(ca, now=now)
    return ca


def load_ca(directory):
    cert_path = os.path.join(directory, CA_CERT)
    key_path = os.path.join(directory, CA_KEY)
    try:
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        with open(key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except FileNotFoundError as exc:
        raise PkiError("no CA in %s (%s missing): run `daozhang pki init --out %s` first"
                       % (directory, os.path.basename(exc.filename), directory))
    except ValueError as exc:
        raise PkiError("CA in %s is not readable PEM: %s" % (directory, exc))
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise PkiError("%s and %s do not belong together" % (cert_path, key_path))
    return CertificateAuthority(directory, cert, key)


def load_ca_cert(directory):
    """Only the CA certificate (to check certificates without the CA key)."""
    path = os.path.join(directory, CA_CERT)
    if not os.path.exists(path):
        raise PkiError("no CA certificate %s: expected the directory made by `daozhang pki init`" % path)
    return load_cert(path)


def _check_kind(ca, cn, kind):
    """A client name is one kind for ever (server names are host names: the
    broker's certificate cannot act as a client, its EKU says serverAuth)."""
    for entry in issued(ca.directory):
        if entry["cn"] == cn and entry["kind"] not in (kind, KIND_SERVER):
            raise IdentityConflict("%r is already issued as a %s identity, not a %s: "
                                   "one name cannot be both (it would share ACL rights)"
                                   % (cn, entry["kind"], kind))


def _record(ca, cert, kind, cn):
    append_ledger(ca.directory, INDEX, [{"serial": format(cert.serial_number, "x"), "kind": kind,
                                         "cn": cn, "not_after": cert.not_valid_after_utc.isoformat()}])


def _leaf(ca, cn, kind, key, eku, san=None, days=LEAF_DAYS, not_before=None, not_after=None,
          now=None):
    start, end = _validity(days, not_before, not_after, now)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, kind),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "daozhang")])
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(ca.cert.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               # EKU keeps the kinds apart at the TLS layer too: a device
               # certificate cannot serve as the broker, nor the broker's as a client.
               .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca.key.public_key()), critical=False))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


def _client(ca, cn, kind, out_prefix, days, not_before, not_after, now):
    check_identity(cn, kind + " id" if kind == KIND_DEVICE else kind + " name")
    _check_kind(ca, cn, kind)
    key = _new_key()
    cert = _leaf(ca, cn, kind, key, ExtendedKeyUsageOID.CLIENT_AUTH, days=days,
                 not_before=not_before, not_after=not_after, now=now)
    paths = _write_pair(out_prefix, cert, key)
    _record(ca, cert, kind, cn)
    return paths


def issue_device(ca, device_id, out_prefix, days=LEAF_DAYS, not_before=None, not_after=None,
                 now=None):
    """PREFIX.crt/.key for a terminal: CN = device id, clientAuth."""
    return _client(ca, device_id, KIND_DEVICE, out_prefix, days, not_before, not_after, now)


def issue_backend(ca, name, out_prefix, days=LEAF_DAYS, not_before=None, not_after=None,
                  now=None):
    """PREFIX.crt/.key for a backend worker: CN = backend name, clientAuth.
    All workers of one backend share this name (the ACL grants it by name)."""
    return _client(ca, name, KIND_BACKEND, out_prefix, days, not_before, not_after, now)


def _san_entries(hosts):
    entries, seen = [], set()
    for host in ["127.0.0.1", "::1", "localhost"] + list(hosts):
        if host in seen:
            continue
        seen.add(host)
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if not re.match(r"^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$", host):
                raise PkiError("--host %r: expected an IP address or a DNS name" % host)
            entries.append(x509.DNSName(host))
    return entries


def issue_server(ca, hosts, out_prefix, days=LEAF_DAYS, now=None):
    """PREFIX.crt/.key for the broker: SAN 127.0.0.1, ::1, localhost and every
    host given; serverAuth only."""
    hosts = list(hosts)
    key = _new_key()
    cn = hosts[0] if hosts else "localhost"
    cert = _leaf(ca, cn, KIND_SERVER, key, ExtendedKeyUsageOID.SERVER_AUTH,
                 san=_san_entries(hosts), days=days, now=now)
    paths = _write_pair(out_prefix, cert, key)
    _record(ca, cert, KIND_SERVER, cn)
    return paths


# -- inspection ---------------------------------------------------------------

def load_cert(path):
    try:
        with open(path, "rb") as f:
            return x509.load_pem_x509_certificate(f.read())
    except ValueError as exc:
        raise PkiError("%s is not a PEM certificate: %s" % (path, exc))


def certificate_identity(cert):
    """(cn, kind) as the broker and ACL will see them."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ous = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return (cns[0].value if cns else None, ous[0].value if ous else None)


def check_certificate(ca_cert, cert, now=None):
    """Raise CertificateRejected unless `cert` is signed by `ca_cert` and valid now."""
    now = now or utcnow()
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError) as exc:
        raise CertificateRejected("certificate %s is not issued by CA %s: %s"
                                  % (cert.subject.rfc4514_string(),
                                     ca_cert.subject.rfc4514_string(), exc))
    except Exception as exc:  # cryptography's InvalidSignature has no common base
        raise CertificateRejected("certificate %s is not issued by CA %s: its signature "
                                  "does not verify (%s)"
                                  % (cert.subject.rfc4514_string(),
                                     ca_cert.subject.rfc4514_string(), type(exc).__name__))
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        raise CertificateRejected("certificate %s valid %s to %s, now is %s"
                                  % (cert.subject.rfc4514_string(),
                                     cert.not_valid_before_utc.isoformat(),
                                     cert.not_valid_after_utc.isoformat(), now.isoformat()))
    return certificate_identity(cert)
