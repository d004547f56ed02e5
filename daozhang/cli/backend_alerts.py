"""`daozhang backend alerts`: alerts devices sent, and the backend's findings."""

import json

import click

from daozhang.cli._backend_common import db_options, open_backend_store


@click.command("alerts")
@click.option("--device", "device_id", default=None, help="Only this device.")
@click.option("--findings", "with_findings", is_flag=True, help="Also list the backend's findings.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object {alerts, findings}.")
@db_options
def alerts(device_id, with_findings, as_json, config_path, db):
    """Alerts collected from devices (security, journal full, settlement...)."""
    with open_backend_store(config_path, db) as store:
        rows = store.alerts(device_id)
        findings = store.findings(device_id) if (with_findings or as_json) else []
    for f in findings:
        f["evidence"] = f["evidence"].hex() if f["evidence"] else None
    if as_json:
        click.echo(json.dumps({"alerts": rows, "findings": findings}, sort_keys=True, default=str))
        return
    for a in rows:
        click.echo("%-16s %-18s %-9s %-8s seq %s" % (a["device_id"], a["kind"], a["state"], a["severity"], a["seq"]))
    for f in findings:
        click.echo("FINDING %-16s %-14s seq %s: %s" % (f["device_id"], f["kind"], f["seq"], f["detail"]))
