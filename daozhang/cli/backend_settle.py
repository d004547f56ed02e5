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


@click.command("settle")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["csv"]), default="csv", show_default=True,
              help="The settlement file's format.")
@click.option("--map", "map_path", type=click.Path(exists=True, dir_okay=False),
              help="A column mapping (TOML) for another acquirer's CSV layout.")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="The backend's TOML config (database, broker, signing key).")
@click.option("--strict", is_flag=True, help="Exit 1 when the file had bad rows.")
@click.option("--json", "as_json", is_flag=True, help="One JSON report on stdout.")
def settle(path, fmt, map_path, config_path, strict, as_json):
    """Ingest an acquirer settlement FILE; send signed settlement acks.

    Rows are stored once per acquirer_ref (re-ingesting a file changes
    nothing), matched to receipts (terminal_id + rrn, else auth code, amount
    and time) and sent to the matching device on daozhang/v1/<dev>/acks.
    Exit: 0 done, 1 bad rows with --strict, 2 usage or I/O error.
    """
    from daozhang.backend.ack import AckSigner
    from daozhang.backend.service import load_backend_config
    from daozhang.backend.settle import MqttPublisher, Settler
    from daozhang.backend.store import open_store
    from daozhang.host_tools.settlement_csv import read_settlement_file
    from daozhang.host_tools.settlement_map import Mapping, load_mapping

    config = load_backend_config(config_path)
    mapping = load_mapping(map_path) if map_path else Mapping.default()
    parsed = read_settlement_file(path, mapping)
    signer = AckSigner.from_file(config["backend"]["key"])
    show_bar = not as_json and sys.stderr.isatty() and len(parsed.rows) > 50
    with open_store(config["backend"]["db"]) as store:
        publisher = None

        def publish(device_id, payload):
            nonlocal publisher
            if publisher is None:   # no broker needed when nothing is to be sent
                publisher = MqttPublisher(config["broker"])
            publisher.publish(device_id, payload)

        try:
            settler = Settler(store, signer, publish)
            if show_bar:
                with click.progressbar(length=len(parsed.rows), label="settling",
                                       file=sys.stderr) as bar:
                    report = settler.settle(parsed, lambda done, total: bar.update(1))
            else:
                report = settler.settle(parsed)
        finally:
            if publisher is not None:
                publisher.close()
    if as_json:
        click.echo(json.dumps(report, sort_keys=True))
    else:
        for bad in report["bad_rows"]:
            click.echo("%s:%d: %s" % (path, bad["line"], bad["reason"]), err=True)
        click.echo("%d rows: %d new, %d already ingested; %d acks sent, %d unknown "
                   "settlements reported, %d unrouted; %d bad rows"
                   % (report["rows"], report["new"], report["already"], report["sent"],
                      report["unknown"], report["unrouted"], len(report["bad_rows"])))
    if strict and report["bad_rows"]:
        raise FindingError("%d bad rows in %s (listed above)" % (len(report["bad_rows"]), path))
