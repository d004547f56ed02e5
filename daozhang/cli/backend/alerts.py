"""`daozhang backend alerts`: alerts devices sent, and the backend's findings.

`--group`: one line per terminal and alert kind (count, total amount,
oldest), what the terminal's own display shows (backend/alert_groups.py)."""

import json
import time

import click

from daozhang.cli.backend.db_options import db_options, open_backend_store


@click.command("alerts")
@click.option("--device", "device_id", default=None, help="Only this device.")
@click.option("--findings", "with_findings", is_flag=True, help="Also list the backend's findings.")
@click.option("--group", "grouped", is_flag=True,
              help="One line per terminal and kind of active alert: count, amount, oldest.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object {alerts, findings}.")
@db_options
def alerts(device_id, with_findings, grouped, as_json, config_path, db):
    """Alerts collected from devices (security, journal full, settlement...)."""
    with open_backend_store(config_path, db) as store:
        rows = store.alerts(device_id)
        findings = store.findings(device_id) if (with_findings or as_json) else []
    if grouped:
        from daozhang.backend.alert_groups import group_line, groups
        summary = groups(rows)
        if as_json:
            click.echo(json.dumps({"groups": summary}, sort_keys=True))
        elif not summary:
            click.echo("no active alerts")
        for g in summary if not as_json else ():
            click.echo(group_line(g, int(time.time() * 1000)))
        return
    for f in findings:
        f["evidence"] = f["evidence"].hex() if f["evidence"] else None
    if as_json:
        click.echo(json.dumps({"alerts": rows, "findings": findings}, sort_keys=True, default=str))
        return
    for a in rows:
        click.echo("%-16s %-18s %-9s %-8s seq %s" % (a["device_id"], a["kind"], a["state"], a["severity"], a["seq"]))
    for f in findings:
        click.echo("FINDING %-16s %-14s seq %s: %s" % (f["device_id"], f["kind"], f["seq"], f["detail"]))
