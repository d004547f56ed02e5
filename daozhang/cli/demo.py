"""`daozhang demo`: a terminal, a broker, the backend, a POS and an acquirer, live."""

import sys

import click


@click.command("demo")
@click.option("--duration", type=click.FloatRange(min=0), default=60, show_default=True,
              metavar="SECONDS", help="How long the POS sells; 0: until Ctrl-C.")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Keep everything here (a new or empty directory); default: a temporary "
                   "directory, removed at the end.")
@click.option("--rate", type=click.FloatRange(min=0.1, max=50), default=2, show_default=True,
              metavar="TPS", help="Sales per second.")
@click.option("--json", "as_json", is_flag=True,
              help="Events and summary on stderr; one JSON summary line on stdout.")
def demo(duration, workdir, rate, as_json):
    """Run the whole system on this machine and show what happens.

    Starts mosquitto (TLS + ACL, a free local port), the backend (SQLite) and
    a provisioned terminal agent; a simulated POS sells at a steady pace and
    a simulated acquirer settles most sales right, some late, short, over
    the contracted fee or under another MCC or region.  Shows sales, syncs,
    settlements and alerts as they happen (a live screen on a terminal, one
    line per event otherwise), on a clock where 1 s is 10 minutes.

    Ctrl-C or the end of --duration stops everything it started and prints a
    summary.  Needs mosquitto (`sudo apt-get install mosquitto`; or set
    DAOZHANG_MOSQUITTO to the binary).  Exit: 0 ok, 2 a part failed or
    mosquitto is missing.
    """
    from daozhang.host_tools.demo.processes import ProcessFailed
    from daozhang.host_tools.demo.run import Demo, print_summary

    human = sys.stderr if as_json else sys.stdout
    live_console = None
    if human.isatty():
        from rich.console import Console
        live_console = Console(file=human)
    runner = Demo(duration=duration, workdir=workdir, rate=rate, out=human,
                  live_console=live_console)
    try:
        summary = runner.run()
    except ProcessFailed as exc:
        summary = getattr(exc, "summary", None)
        if summary is not None:
            print_summary(summary, human, sys.stdout if as_json else None)
        raise
    print_summary(summary, human, sys.stdout if as_json else None)
