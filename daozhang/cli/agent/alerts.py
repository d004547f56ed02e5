"""`daozhang agent alerts --config FILE [--json]`: the terminal's current alerts.

Reads alerts.json, which the running agent writes atomically next to
agent.toml at every alert transition (agent/settlement_alerts.py).  With
`--from-journal`, or when that file does not exist (the agent never ran
with the watchdog), rebuilds them read-only from the journal's alert
records (type 3), which is what the agent itself does at start.
Exit codes: 0 listed (also when alerts fire: they are not errors of this
command), 2 the config or the journal cannot be read.
"""

import json
import os

import click

from daozhang.agent.core import strict_json
from daozhang.agent.core.errors import DaozhangError, LocalError

LIST_LIMIT = 20   # single alerts listed under the grouped line


def alerts_from_journal(journal_path, currency="CNY"):
    """Alert records rebuilt from a journal file, without writing to it."""
    from daozhang.agent.core.journal import record
    from daozhang.agent.core.settlement.alerts import AlertMachine
    from daozhang.agent.settlement_alerts import plain as _plain
    from daozhang.host_tools.verify.reader import iter_records

    machine = AlertMachine(currency)
    try:
        for rec in iter_records(journal_path):
            if rec.type == record.TYPE_ALERT:
                machine.replay(dict(rec.payload))
    except (OSError, DaozhangError) as exc:
        raise LocalError("cannot read the journal %s: %s" % (journal_path, exc)) from None
    alerts = [_plain(machine.alerts[i]) for i in sorted(machine.alerts,
                                                         key=lambda i: (i[0], str(i[1])))]
    return {"summary": machine.status_summary(), "alerts": alerts, "alerts_total": len(alerts),
            "source": "journal"}


@click.command("alerts")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="The agent.toml of the device.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object {summary, alerts}.")
@click.option("--from-journal", is_flag=True,
              help="Rebuild from the journal instead of the running agent's alerts.json.")
def alerts(config_path, as_json, from_journal):
    """Current alerts on this terminal: pending, firing, and lately resolved."""
    from daozhang.agent.config import load_agent_config
    from daozhang.agent.settlement_alerts import alerts_file_path

    config = load_agent_config(config_path)
    path = alerts_file_path(config["path"])
    out = None
    if not from_journal and os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                out = strict_json.loads(f.read())
            out["source"] = "agent"
        except (OSError, ValueError) as exc:
            raise LocalError("%s: cannot read (%s); try --from-journal" % (path, exc)) from None
    if out is None:
        out = alerts_from_journal(config["journal"]["path"])
    if as_json:
        click.echo(json.dumps(out, sort_keys=True, ensure_ascii=False))
        return
    click.echo(out["summary"]["display"])
    shown = out["alerts"][:LIST_LIMIT]
    for a in shown:
        click.echo("%-9s %-8s %-20s %s" % (a["state"], a["severity"], a["kind"], a["key"]))
    total = out.get("alerts_total", len(out["alerts"]))
    if total > len(shown):
        # An outage holds thousands: the grouped line above counts them all.
        click.echo("... and %d more (the line above counts them all; --json lists %d)"
                   % (total - len(shown), len(out["alerts"])))
