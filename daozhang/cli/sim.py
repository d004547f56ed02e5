"""`daozhang sim`: a simulated fleet of terminals against a real broker and backend."""

import json
import os

import click


@click.command("sim")
@click.option("--terminals", type=click.IntRange(1, 100000), required=True, help="Terminals to simulate.")
@click.option("--rate", type=click.FloatRange(0), default=2.0, show_default=True,
              help="Sales per terminal per minute.")
@click.option("--backlog", type=click.IntRange(0), default=0, show_default=True,
              help="Records each terminal holds unsent at start (a reconnect storm).")
@click.option("--duration", type=click.FloatRange(0), default=60.0, show_default=True,
              help="Seconds of sales; then the run waits for every ack (--drain-timeout).")
@click.option("--drain-timeout", type=click.FloatRange(0), default=120.0, show_default=True,
              help="At most this many seconds of waiting for acks after the sales.")
@click.option("--stall-timeout", type=click.FloatRange(0), default=None,
              help="Stop waiting for acks after this many seconds without a new one.")
@click.option("--hold-backlog", is_flag=True,
              help="Connect every terminal first, then release all backlogs at once "
                   "(drain_s then measures the backend's drain, not the connect storm).")
@click.option("--status-interval", type=click.FloatRange(0.1), default=10.0, show_default=True,
              help="Seconds between a terminal's status messages with its counters (when changed).")
@click.option("--processes", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Split the terminals over this many simulator processes.")
@click.option("--broker", default="127.0.0.1:8883", show_default=True, metavar="HOST:PORT")
@click.option("--pki", "pki_dir", required=True, type=click.Path(file_okay=False),
              help="The fleet CA directory (daozhang pki init): issues the terminals' certificates.")
@click.option("--cache", default=None, type=click.Path(file_okay=False),
              help="Where issued identities are kept for the next run (default: PKI/../fleet-cache).")
@click.option("--backend-pub", required=True, type=click.Path(dir_okay=False),
              help="The backend's ack-signing public key (PEM).")
@click.option("--register", "register_db", default=None, metavar="DB",
              help="Register the terminals' journal keys in this backend database first.")
@click.option("--prefix", default="sim", show_default=True, help="Device ids are PREFIX-000000...")
@click.option("--json", "as_json", is_flag=True, help="Only the final report, as one JSON object.")
def sim(terminals, rate, backlog, duration, drain_timeout, stall_timeout, hold_backlog, status_interval,
        processes,
        broker, pki_dir, cache, backend_pub,
        register_db, prefix, as_json):
    """N terminals in one process (or --processes P): real certificates, signed journals, real sync.

    Prints progress every few seconds, then what was sold, sent and acked.
    Exit code 1 if some terminal's journal was not fully acknowledged.
    """
    from daozhang.agent.core.errors import LocalError
    from daozhang.fleet.sim import SimSettings, run_sim

    host, _, port = broker.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter("expected HOST:PORT, got %r" % broker, param_hint="--broker")
    ca_dir = os.path.abspath(pki_dir)
    settings = SimSettings(terminals, rate, backlog, duration, host=host, port=int(port),
                           ca=os.path.join(ca_dir, "ca.crt"), ca_dir=ca_dir,
                           cache=cache or os.path.join(os.path.dirname(ca_dir), "fleet-cache"),
                           prefix=prefix, backend_pub=backend_pub, register_db=register_db,
                           drain_timeout=drain_timeout, stall_timeout=stall_timeout,
                           hold_backlog=hold_backlog, processes=processes,
                           status_interval_s=status_interval)
    if not os.path.exists(settings.ca):
        raise LocalError("%s: no ca.crt: give the directory made by `daozhang pki init`" % ca_dir)

    def progress(snap):
        click.echo("t=%6.1fs online %6d  sales %8d  acked %9d  backlog %9d"
                   % (snap["elapsed_s"], snap["online"], snap["sales"], snap["acked"],
                      snap["backlog"]), err=True)

    report = run_sim(settings, None if as_json else progress)
    report.pop("monotonic", None)       # instants for a caller sampling beside the run
    if as_json:
        click.echo(json.dumps(report, sort_keys=True))
    else:
        for key in sorted(report):
            click.echo("%-22s %s" % (key, report[key]))
    return 0 if report["drained"] else 1
