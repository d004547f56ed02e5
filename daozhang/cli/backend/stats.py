"""`daozhang backend stats` and `daozhang backend receipts`."""

import json

import click

from daozhang.cli.backend.db_options import db_options, open_backend_store


@click.command("stats")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@db_options
def stats(as_json, config_path, db):
    """Counts: devices, records, receipts (transactions), alerts, findings."""
    from daozhang.backend.settlement_outbox import Outbox

    with open_backend_store(config_path, db) as store:
        counts = store.stats()
        # Settlement acks no terminal has confirmed yet (SPEC 7.8.7).
        counts["settlements_pending"] = Outbox(store).counts()["pending"]
    if as_json:
        click.echo(json.dumps(counts, sort_keys=True))
        return
    for key in ("devices", "records", "receipts", "alerts", "findings", "settlements_pending"):
        click.echo("%-9s %d" % (key, counts[key]))


@click.command("receipts")
@click.option("--device", "device_id", required=True, help="Device id.")
@click.option("--from-seq", type=int, default=None, help="First sequence number.")
@click.option("--limit", type=int, default=None, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@db_options
def receipts(device_id, from_seq, limit, as_json, config_path, db):
    """A device's stored transaction records, in sequence order."""
    with open_backend_store(config_path, db) as store:
        rows = store.receipts(device_id, from_seq=from_seq, limit=limit)
    out = [{"seq": r["seq"], "hash": r["hash"].hex(), "received_at": r["received_at"],
            "payload": r["payload"]} for r in rows]
    if as_json:
        click.echo(json.dumps(out, sort_keys=True))
        return
    for r in out:
        p = r["payload"]
        click.echo("%8d  %-10s %-24s %12s %s" % (r["seq"], p.get("kind", "?"), p.get("pos_txn_id", "?"),
                                               p.get("amount", "?"), p.get("currency", "")))
