"""`daozhang backend device add|list`: the registry of devices and their keys."""

import json

import click

from daozhang.cli.backend.db_options import db_options, open_backend_store
from daozhang.cli.params.card_args import refuse_card_data


@click.group("device")
def device():
    """Register devices and their public keys."""


@device.command("add")
@click.argument("device_id", callback=refuse_card_data)
@click.option("--pubkey", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The device's Ed25519 public key (PEM, from provisioning: device.pub).")
@click.option("--replace", is_flag=True, help="Replace the key of a registered device (key rotation).")
@db_options
def add(device_id, pubkey, replace, config_path, db):
    """Register DEVICE_ID with its checkpoint-signing key."""
    from daozhang.signing import fingerprint, load_public_key, raw_public
    from daozhang.agent.core import device_id as device_id_rule

    device_id_rule.check(device_id, "device id")
    raw = raw_public(load_public_key(pubkey))
    with open_backend_store(config_path, db) as store:
        new = store.add_device(device_id, raw, replace=replace)
    click.echo("%s %s (key %s)" % ("added" if new else "unchanged" if not replace else "replaced",
                                   device_id, fingerprint(raw)))


@device.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@db_options
def list_devices(as_json, config_path, db):
    """List registered devices and how far each chain is stored."""
    with open_backend_store(config_path, db) as store:
        rows = store.devices()
    out = [{"device_id": r["device_id"], "key_id": r["key_id"].hex(),
            "contiguous_seq": r["contiguous_seq"], "added_at": r["added_at"]} for r in rows]
    if as_json:
        click.echo(json.dumps(out, sort_keys=True))
        return
    for r in out:
        click.echo("%-24s key %s  stored through seq %s" % (r["device_id"], r["key_id"], r["contiguous_seq"]))
