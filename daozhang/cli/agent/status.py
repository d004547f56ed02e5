"""`daozhang agent status --config FILE [--json]`: backlog and sync health."""

import json

import click


@click.command("status")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="The agent.toml of the device.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def status(config_path, as_json):
    """Backlog depth, oldest unacknowledged record, reconnects, rejected messages."""
    from daozhang.agent.sync_status import agent_status

    out = agent_status(config_path)
    if as_json:
        click.echo(json.dumps(out, sort_keys=True))
        return
    age = out["oldest_unacked_age_ms"]
    click.echo("device       %s (%s)" % (out["device"], out["connection"]))
    click.echo("backlog      %d records (acked below %d, next %d)" % (out["backlog"], out["acked"], out["next_seq"]))
    click.echo("oldest       %s" % ("-" if age is None else "%.1f s unacknowledged" % (age / 1000.0)))
    click.echo("journal      %.0f%% full (%d of %d segments in use)" % (out["fill"] * 100, out["segments_in_use"], out["segments"]))
    click.echo("reconnects   %s" % ("-" if out["reconnects"] is None else out["reconnects"]))
    reasons = ", ".join("%s %d" % kv for kv in sorted(out.get("rejected_by_reason", {}).items()))
    click.echo("rejected     %s down messages%s" % ("-" if out["rejected"] is None else out["rejected"],
                                                    " (%s)" % reasons if reasons else ""))
    stalled = out.get("stalled")
    if stalled:
        import time
        age = max(0, int(time.time() - (stalled.get("since") or 0) / 1000.0))
        click.echo("stalled      %s for %d s: the link is up but the backlog does not move; "
                   "retrying%s" % (stalled.get("reason"), age,
                                   " (%s)" % stalled["why"] if stalled.get("why") else ""))
    settle_n = out.get("settle_n")
    click.echo("settlements  %s" % ("-" if settle_n is None else
                                    "every ack up to n=%d processed (told to the backend)" % settle_n))
