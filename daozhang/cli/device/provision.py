"""`daozhang device provision`: a device's key, config and journal in one directory.

The directory (--out DIR) is what gets installed at the board's state_dir
(/var/lib/daozhang on the Pi).  The work is daozhang/provision.py; this
module parses the options and prints what was made.
"""

import json

import click

from daozhang.cli.params.card_args import refuse_card_data
from daozhang.cli.params.sizes import ByteSize
from daozhang.provision import provision_device


@click.command("provision")
@click.option("--board", required=True, help="Board name (rpi4, generic-linux) or a board .toml.")
@click.option("--device-id", required=True, callback=refuse_card_data, help="This terminal's id: 1-64 of A-Z a-z 0-9 . _ -")
@click.option("--profile", "profile_path", required=True, type=click.Path(dir_okay=False),
              help="The merchant profile (TOML), e.g. examples/merchant.toml.")
@click.option("--backend-pubkey", required=True, type=click.Path(dir_okay=False),
              help="The backend's public key (PEM): the device trusts its acks.")
@click.option("--technician-pubkey", "technician_pubkeys", multiple=True, type=click.Path(dir_okay=False),
              help="A technician's public key (PEM) for the service port; repeatable.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory to create (installed at the board's state_dir).")
@click.option("--journal-size", type=ByteSize(), default=None, help="Override the board's journal size.")
@click.option("--segment-size", type=ByteSize(), default=None, help="Override the board's segment size.")
@click.option("--socket", "socket_path", default=None, help="Override the board's intake socket path.")
@click.option("--socket-group", default=None, help="Override the board's intake socket group (\"\": none).")
@click.option("--broker", default=None, metavar="HOST:PORT",
              help="The MQTT broker (TLS, port 8883 if omitted): turns sync on; needs --ca --cert --key.")
@click.option("--ca", "ca_path", type=click.Path(dir_okay=False), default=None,
              help="The fleet CA certificate (PEM) that verifies the broker.")
@click.option("--cert", "cert_path", type=click.Path(dir_okay=False), default=None,
              help="This device's TLS client certificate (PEM, CN = the device id).")
@click.option("--key", "key_path", type=click.Path(dir_okay=False), default=None,
              help="The private key of --cert (PEM); copied with mode 0600.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def provision(board, device_id, profile_path, backend_pubkey, technician_pubkeys, out_dir,
              journal_size, segment_size, socket_path, socket_group, broker, ca_path, cert_path,
              key_path, as_json):
    """Create a device's Ed25519 key (0600), DIR/agent.toml and its journal.

    With --broker HOST:PORT --ca --cert --key the device is complete: the TLS
    files are copied in (ca.crt, device-tls.crt, device-tls.key) and
    agent.toml gets its [mqtt] table, so `daozhang agent run` syncs."""
    tls = (ca_path, cert_path, key_path) if (ca_path or cert_path or key_path) else None
    info = provision_device(out_dir, board, device_id, profile_path, backend_pubkey, technician_pubkeys,
                            journal_size=journal_size, segment_size=segment_size, socket_path=socket_path,
                            socket_group=socket_group, broker=broker, tls=tls)
    if as_json:
        click.echo(json.dumps(info, sort_keys=True))
        return
    click.echo("device      %s (board %s)" % (device_id, info["board"]))
    click.echo("config      %s" % info["config"])
    click.echo("public key  %s" % info["public_key"])
    click.echo("fingerprint %s" % info["fingerprint"])
    click.echo("sync        %s" % (info["broker"] or "off (no --broker: journaling only)"))
