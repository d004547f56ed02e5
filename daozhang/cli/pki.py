"""`daozhang pki ...`: the fleet CA and the TLS certificates it signs.

    daozhang pki init    --out CA_DIR
    daozhang pki server  --ca CA_DIR [--host H ...] --out PREFIX
    daozhang pki device  ID   --ca CA_DIR [--out PREFIX]
    daozhang pki backend NAME --ca CA_DIR [--out PREFIX]
    daozhang pki show    CERT [--ca CA_DIR] [--json]
    daozhang pki revoke  NAME --ca CA_DIR
    daozhang pki crl     --ca CA_DIR [--days N] [--json]

Every command writes PREFIX.crt and PREFIX.key (0600) and refuses to
overwrite.  Exit codes: 0 ok, 1 a certificate fails its check (show --ca),
2 a usage or I/O error.
"""

import json

import click

from daozhang.cli.params.card_args import refuse_card_data
from daozhang.host_tools.pki import ca as pki_lib
from daozhang.host_tools.pki import crl as pki_crl

EPILOG = "Exit codes: 0 ok, 1 certificate rejected (show --ca), 2 usage or I/O error."


def _days_option(default):
    return click.option("--days", type=click.IntRange(1, 100 * 365), default=default,
                        show_default=True, help="Validity in days.")


def _print_paths(kind, name, paths):
    click.echo("%s %s: %s %s" % (kind, name, paths.cert, paths.key))


@click.group(epilog=EPILOG)
def pki():
    """Fleet CA and TLS certificates for broker, devices, backend.

    The broker trusts only this CA for client certificates and uses each
    certificate's CN as the MQTT username its ACL checks: a device's CN is
    its device id, the backend's CN is its backend name.
    """


@pki.command("init", epilog=EPILOG)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for ca.crt and ca.key (created).")
@click.option("--name", default="daozhang fleet CA", show_default=True, callback=refuse_card_data, help="The CA's CN.")
@_days_option(pki_lib.CA_DAYS)
def init(out_dir, name, days):
    """Create the fleet CA (CA_DIR/ca.crt, CA_DIR/ca.key)."""
    ca = pki_lib.create_ca(out_dir, name=name, days=days)
    click.echo("CA %s: %s/%s %s/%s" % (name, ca.directory, pki_lib.CA_CERT,
                                        ca.directory, pki_lib.CA_KEY))


@pki.command("server", epilog=EPILOG)
@click.option("--ca", "ca_dir", required=True, type=click.Path(file_okay=False, exists=True),
              help="The CA directory (from `pki init`).")
@click.option("--host", "hosts", multiple=True,
              help="A DNS name or IP the broker is reached by (repeatable); "
                   "127.0.0.1, ::1 and localhost are always included.")
@click.option("--out", "out_prefix", required=True, help="Writes PREFIX.crt and PREFIX.key.")
@_days_option(pki_lib.LEAF_DAYS)
def server(ca_dir, hosts, out_prefix, days):
    """Issue the broker's server certificate."""
    ca = pki_lib.load_ca(ca_dir)
    paths = pki_lib.issue_server(ca, hosts, out_prefix, days=days)
    _print_paths("server", hosts[0] if hosts else "localhost", paths)


@pki.command("device", epilog=EPILOG)
@click.argument("device_id", callback=refuse_card_data)
@click.option("--ca", "ca_dir", required=True, type=click.Path(file_okay=False, exists=True),
              help="The CA directory (from `pki init`).")
@click.option("--out", "out_prefix", default=None,
              help="Writes PREFIX.crt and PREFIX.key [default: ./DEVICE_ID].")
@_days_option(pki_lib.LEAF_DAYS)
def device(device_id, ca_dir, out_prefix, days):
    """Issue a terminal's client certificate (CN = DEVICE_ID)."""
    ca = pki_lib.load_ca(ca_dir)
    paths = pki_lib.issue_device(ca, device_id, out_prefix or device_id, days=days)
    _print_paths("device", device_id, paths)


@pki.command("backend", epilog=EPILOG)
@click.argument("name", default="backend", callback=refuse_card_data)
@click.option("--ca", "ca_dir", required=True, type=click.Path(file_okay=False, exists=True),
              help="The CA directory (from `pki init`).")
@click.option("--out", "out_prefix", default=None,
              help="Writes PREFIX.crt and PREFIX.key [default: ./NAME].")
@_days_option(pki_lib.LEAF_DAYS)
def backend(name, ca_dir, out_prefix, days):
    """Issue the backend's client certificate (CN = NAME, default "backend").

    Every worker of one backend uses this one identity; the broker's ACL
    grants it by name (`user backend` in examples/mosquitto/acl).
    """
    ca = pki_lib.load_ca(ca_dir)
    paths = pki_lib.issue_backend(ca, name, out_prefix or name, days=days)
    _print_paths("backend", name, paths)


@pki.command("show", epilog=EPILOG)
@click.argument("cert_path", type=click.Path(dir_okay=False, exists=True))
@click.option("--ca", "ca_dir", default=None, type=click.Path(file_okay=False, exists=True),
              help="Also check it chains to this CA and is valid now (exit 1 if not).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def show(cert_path, ca_dir, as_json):
    """Print a certificate's identity (CN, kind), validity and SANs."""
    cert = pki_lib.load_cert(cert_path)
    cn, kind = pki_lib.certificate_identity(cert)
    info = {"cn": cn, "kind": kind, "serial": format(cert.serial_number, "x"),
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "issuer": cert.issuer.rfc4514_string()}
    try:
        san = cert.extensions.get_extension_for_class(pki_lib.x509.SubjectAlternativeName)
        info["san"] = [str(v.value) for v in san.value]
    except pki_lib.x509.ExtensionNotFound:
        info["san"] = []
    error = None
    if ca_dir:
        try:
            pki_lib.check_certificate(pki_lib.load_ca_cert(ca_dir), cert)
            info["valid"] = True
        except pki_lib.CertificateRejected as exc:
            info["valid"] = False
            error = exc
    if as_json:
        click.echo(json.dumps(info, sort_keys=True))
    else:
        for key in sorted(info):
            click.echo("%-10s %s" % (key, info[key]))
    if error is not None:
        raise error


@pki.command("revoke", epilog=EPILOG)
@click.argument("name")
@click.option("--ca", "ca_dir", required=True, type=click.Path(file_okay=False, exists=True),
              help="The CA directory (from `pki init`).")
def revoke(name, ca_dir):
    """Revoke every certificate issued to NAME (a lost or stolen terminal).

    Writes CA_DIR/crl.pem; install it as the broker's `crlfile` and restart
    or SIGHUP mosquitto: the terminal's TLS handshake then fails.
    """
    serials = pki_crl.revoke(pki_lib.load_ca(ca_dir), name)
    status = pki_crl.crl_status(ca_dir)
    click.echo("revoked %s: %s; %s/%s lists %d, valid until %s"
               % (name, ", ".join(serials) if serials else "already revoked", ca_dir,
                  pki_crl.CRL, status["revoked"], status["next_update"]))


@pki.command("crl", epilog=EPILOG)
@click.option("--ca", "ca_dir", required=True, type=click.Path(file_okay=False, exists=True),
              help="The CA directory (from `pki init`).")
@click.option("--days", type=click.IntRange(1, 3650), default=None,
              help="Write a fresh CRL valid this many days (renewal).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def crl(ca_dir, days, as_json):
    """Show the CRL's revocations and remaining life; --days renews it.

    Renew well before `days_left` reaches 0: an expired CRL makes the broker
    refuse every client.
    """
    if days is not None:
        pki_crl.write_crl(pki_lib.load_ca(ca_dir), days=days)
    status = pki_crl.crl_status(ca_dir)
    if as_json:
        click.echo(json.dumps(status, sort_keys=True))
    else:
        click.echo("%s/%s: %d revoked, next update %s (%.1f days left)"
                   % (ca_dir, pki_crl.CRL, status["revoked"], status["next_update"],
                      status["days_left"]))
