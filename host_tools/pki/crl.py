"""Revoking fleet certificates: the CA's revocation list (CRL) for the broker.

A stolen or retired terminal must not reach the broker with its client
certificate, even though the certificate has years of validity left.  The
broker checks every client certificate against CA_DIR/crl.pem (mosquitto
`crlfile`), which this module keeps: `revoke` adds every certificate the CA
issued to a name to CA_DIR/revoked.jsonl and writes a new CRL.

The CRL always exists (create_ca writes an empty one) because mosquitto
refuses to start with a `crlfile` it cannot read.  A CRL has a next-update
time, and OpenSSL rejects *every* client once it has passed, so it is
written with a long life (CRL_DAYS) and `daozhang pki crl` renews it;
`crl_status` tells how long it has left.
"""

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from daozhang.files import atomic_write
from daozhang.host_tools.pki.errors import PkiError
from daozhang.host_tools.pki.ledger import KIND_SERVER, append_ledger, issued, read_ledger, utcnow

CRL = "crl.pem"
REVOKED = "revoked.jsonl"
CRL_DAYS = 365


def revoked(directory):
    """The CA's revocations: a list of dicts {serial, cn, kind, revoked_at}."""
    return read_ledger(directory, REVOKED)


def revoke(ca, cn, days=CRL_DAYS, now=None):
    """Revoke every client certificate issued to `cn`; write the new CRL.
    Returns the serials newly revoked (hex); [] if all were already."""
    now = now or utcnow()
    entries = [e for e in issued(ca.directory) if e["cn"] == cn and e["kind"] != KIND_SERVER]
    if not entries:
        raise PkiError("no client certificate issued to %r by the CA in %s (see issued.jsonl)"
                       % (cn, ca.directory))
    already = {e["serial"] for e in revoked(ca.directory)}
    new = [e for e in entries if e["serial"] not in already]
    append_ledger(ca.directory, REVOKED, [{"serial": e["serial"], "cn": cn, "kind": e["kind"],
                                           "revoked_at": now.isoformat()} for e in new])
    write_crl(ca, days=days, now=now)
    return [e["serial"] for e in new]


def write_crl(ca, days=CRL_DAYS, now=None):
    """(Re)write CA_DIR/crl.pem from revoked.jsonl, atomically (the broker
    may read it at any moment).  Returns its path."""
    now = now or utcnow()
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca.cert.subject)
               .last_update(now - datetime.timedelta(hours=1))
               .next_update(now + datetime.timedelta(days=days))
               .add_extension(x509.CRLNumber(_next_crl_number(ca.directory)), critical=False))
    for entry in revoked(ca.directory):
        when = datetime.datetime.fromisoformat(entry["revoked_at"])
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(int(entry["serial"], 16))
            .revocation_date(when).build())
    crl = builder.sign(ca.key, hashes.SHA256())
    path = os.path.join(ca.directory, CRL)
    atomic_write(path, crl.public_bytes(serialization.Encoding.PEM), durable=True)
    os.chmod(path, 0o644)   # the broker reads it; a umask may have cleared bits
    return path


def _next_crl_number(directory):
    """RFC 5280 5.2.3: a CRL's number only grows."""
    path = os.path.join(directory, "crlnumber")
    try:
        with open(path) as f:
            number = int(f.read().strip()) + 1
    except (FileNotFoundError, ValueError):
        number = 1
    with open(path, "w") as f:
        f.write("%d\n" % number)
    return number


def crl_status(directory, now=None):
    """{"revoked": N, "next_update": iso, "days_left": float} of CA_DIR/crl.pem."""
    now = now or utcnow()
    path = os.path.join(directory, CRL)
    try:
        with open(path, "rb") as f:
            crl = x509.load_pem_x509_crl(f.read())
    except FileNotFoundError:
        raise PkiError("no CRL %s: run `daozhang pki crl --ca %s` (the broker needs one)"
                       % (path, directory))
    nxt = crl.next_update_utc
    return {"revoked": len(crl), "next_update": nxt.isoformat(),
            "days_left": round((nxt - now).total_seconds() / 86400, 2)}
