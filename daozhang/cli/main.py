"""The `daozhang` command line: one entry point, subcommands grouped by user.

Subcommand modules load lazily (a table, as mpremote's _COMMANDS), so
`daozhang journal verify` on a technician's laptop does not import paho or
psycopg.  Every error becomes one line `daozhang: <message>` and an exit code:
0 ok, 1 a finding (tampering, a failed check), 2 a usage or I/O error.
"""

import sys

import click

from daozhang.cli._lazy import LazyGroup

from daozhang.agent.core.errors import DaozhangError

# name -> "module:attribute"; each attribute is a click command or group.
_COMMANDS = {
    "keys": ("daozhang.cli.keys:keys", "Create signing keys."),
    "journal": ("daozhang.cli.journal:journal", "Create, append to, verify and export a journal."),
    "device": ("daozhang.cli.device:device", "Provision a device; pull its journal over USB."),
    "agent": ("daozhang.cli.agent:agent", "Run the terminal agent; its status and alerts."),
    "txn": ("daozhang.cli.txn:txn", "Submit a transaction to a running agent (POS side)."),
    "receipt": ("daozhang.cli.receipt:receipt", "Verify a printed receipt code offline."),
    "pki": ("daozhang.cli.pki:pki", "Fleet CA and TLS certificates for broker, devices, backend."),
    "backend": ("daozhang.cli.backend:backend", "Run the reference backend; devices, settlements, stats."),
    "reconcile": ("daozhang.cli.reconcile:reconcile", "Hold a journal against an acquirer settlement file."),
    "sim": ("daozhang.cli.sim:sim", "Simulate a fleet of terminals against a broker and backend."),
    "demo": ("daozhang.cli.demo:demo", "Run a terminal, a broker and the backend, live."),
}

EXIT_CODES_HELP = "Exit codes: 0 ok, 1 a finding (tampering, failed check), 2 usage or I/O error."


@click.group(cls=LazyGroup, table=_COMMANDS, epilog=EXIT_CODES_HELP)
@click.version_option(package_name="daozhang")
def cli():
    """daozhang (到账): prove every card payment lands in the merchant's account."""


def main(argv=None):
    try:
        rc = cli.main(args=argv, prog_name="daozhang", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("daozhang: aborted", err=True)
        return sys.exit(130)
    except click.ClickException as exc:
        click.echo("daozhang: " + exc.format_message(), err=True)
        return sys.exit(2)
    except DaozhangError as exc:
        click.echo("daozhang: " + str(exc), err=True)
        return sys.exit(exc.exit_code)
    except OSError as exc:
        where = " (" + exc.filename + ")" if getattr(exc, "filename", None) else ""
        click.echo("daozhang: " + (exc.strerror or str(exc)) + where, err=True)
        return sys.exit(2)
    except KeyboardInterrupt:
        click.echo("daozhang: interrupted", err=True)
        return sys.exit(130)
    sys.exit(rc or 0)
