"""`daozhang backend lost`: stored records a device's journal no longer holds."""

import json

import click

from daozhang.backend.device_lost import records_not_held
from daozhang.cli.backend.db_options import db_options, open_backend_store


@click.command("lost")
@click.option("--device", "device_id", required=True, help="Device id.")
@click.option("--journal", "journal_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The device's journal (after `journal salvage`, or pulled with `device pull`).")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@db_options
def lost(device_id, journal_path, as_json, config_path, db):
    """List the backend's records of DEVICE that its journal no longer holds
    (set aside by salvage or cut by recovery): the backend's copy is the only one.
    Exit 1 if there are any."""
    with open_backend_store(config_path, db) as store:
        rows = records_not_held(store, device_id, journal_path)
    if as_json:
        click.echo(json.dumps(rows, sort_keys=True))
    else:
        for r in rows:
            click.echo("%d %s type %d: %s from the journal" % (r["seq"], r["hash"], r["type"], r["why"]))
        click.echo("%s: %d stored record(s) the journal no longer holds" % (device_id, len(rows)))
    if rows:
        raise SystemExit(1)
