"""`daozhang backend settle FILE`: ingest an acquirer settlement file, match
each row to a stored receipt and send each device its signed settlement acks.

Exit codes: 0 every row handled (bad rows are reported, the good ones still
count: still 0); 1 the file had bad rows (`--strict` only); 2 usage or I/O
(unreadable file, broker unreachable, database error).
"""

import json
import sys

import click

from daozhang.agent.core.errors import FindingError
from daozhang.cli.params.settlement_input import bank_statement, open_input, settlement_options


@click.command("settle")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="The backend's TOML config (database, broker, signing key).")
@click.option("--strict", is_flag=True, help="Exit 1 when the file had bad rows.")
@click.option("--json", "as_json", is_flag=True, help="One JSON report on stdout.")
@settlement_options
def settle(path, config_path, strict, as_json, fmt, map_path, settled_at, bank_path,
           bank_map_path):
    """Ingest an acquirer settlement FILE; send signed settlement acks.

    Rows are stored once per acquirer_ref (re-ingesting a file changes
    nothing), matched to receipts (terminal_id + rrn, else auth code, amount
    and time) and sent to the matching device on daozhang/v1/<dev>/acks.
    Exit: 0 done, 1 bad rows with --strict, 2 usage or I/O error.
    """
    from daozhang.backend.ack import AckSigner
    from daozhang.backend.config import load_backend_config
    from daozhang.backend.settle import MqttPublisher, Settler
    from daozhang.backend.store import open_store

    config = load_backend_config(config_path)
    parsed = open_input(path, fmt, map_path, settled_at, quiet=as_json)
    bank = bank_statement(bank_path, bank_map_path)
    signer = AckSigner.from_file(config["backend"]["key"])
    show_bar = not as_json and sys.stderr.isatty()
    with open_store(config["backend"]["db"]) as store:
        publisher = None

        def publish(device_id, payload):
            nonlocal publisher
            if publisher is None:   # no broker needed when nothing is to be sent
                publisher = MqttPublisher(config["broker"])
            publisher.publish(device_id, payload)

        tally = None
        try:
            settler = Settler(store, signer, publish)
            if bank is not None:
                parsed, tally = _tallied(parsed, bank, settler.matcher)
            if show_bar:
                # The file is streamed: the row count is unknown until the end.
                from rich.progress import Progress
                with Progress(transient=True) as bar:
                    task = bar.add_task("settling", total=None)
                    report = settler.settle(parsed, lambda done, total: bar.update(
                        task, completed=done))
            else:
                report = settler.settle(parsed)
            if bank is not None:
                report["payouts"] = _payouts(tally, bank, signer, publish)
        finally:
            if publisher is not None:
                publisher.close()
    if as_json:
        click.echo(json.dumps(report, sort_keys=True, ensure_ascii=False))
    else:
        for bad in report["bad_rows"]:
            click.echo("%s:%d: %s" % (path, bad["line"], bad["reason"]), err=True)
        click.echo("%d rows: %d new, %d already ingested; %d acks sent, %d unknown "
                   "settlements reported, %d unrouted; %d bad rows"
                   % (report["rows"], report["new"], report["already"], report["sent"],
                      report["unknown"], report["unrouted"], len(report["bad_rows"])))
    payouts = report.get("payouts")
    if payouts and not as_json:
        for p in payouts["days"]:
            if p["status"] in ("deposit_missing", "deposit_short"):
                click.echo("%s: settlement day %s: expected %d, received %s (%d rows)"
                           % (p["status"], p["day"], p["expected"], p["received"], p["rows"]))
    if payouts and (payouts["counts"]["deposit_missing"] or payouts["counts"]["deposit_short"]):
        raise FindingError("payouts missing or short at the bank (listed above): %d missing, "
                           "%d short" % (payouts["counts"]["deposit_missing"],
                                         payouts["counts"]["deposit_short"]))
    if strict and report["bad_rows"]:
        raise FindingError("%d bad rows in %s (listed above)" % (len(report["bad_rows"]), path))


def _payouts(tally, bank, signer, publish):
    """The bank check; each missing or short payout also alerts the terminals
    whose sales it carried (backend/deposit_alerts.py, SPEC 7.10.2)."""
    from daozhang.backend.deposit_alerts import DEFAULT_CURRENCY, send_deposit_alerts
    from daozhang.settlement_files.payouts import check_payouts, payout_counts
    days, unexplained = check_payouts(tally.days.values(), bank.credits, 0, bank.window_days)
    alerted = send_deposit_alerts(days, signer, DEFAULT_CURRENCY, publish)
    return {"bank": bank.as_dict(), "days": days, "unexplained": unexplained,
            "counts": payout_counts(days), "alerts_sent": alerted}


def _tallied(stream, bank, matcher):
    """The stream, its rows also summed per settlement day for --bank (days
    in the bank map's zone, Asia/Shanghai when it names none), each with the
    sale and terminal it matched (`matcher`: the Settler's)."""
    import zoneinfo
    from datetime import datetime, timezone
    from daozhang.settlement_files.payouts import PayoutTally

    tz = bank.tz or zoneinfo.ZoneInfo("Asia/Shanghai")
    tally = PayoutTally(lambda s: int(datetime.fromtimestamp(s, timezone.utc).astimezone(tz)
                                      .utcoffset().total_seconds()))
    rows = stream.rows

    def counted():
        for row in rows():
            entry = matcher.match(row)
            if entry is None:
                tally.add(row)
            else:
                tally.add(row, entry["pos_txn_id"], entry["device_id"])
            yield row
    stream.rows = counted
    return stream, tally
