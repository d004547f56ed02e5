"""`daozhang receipt verify CODE --pubkey FILE`: check a printed receipt offline."""

import json
import sys

import click

from daozhang.agent.core.errors import DaozhangError
from daozhang.agent.receipt import describe, verify_code


@click.group(help="Verify a printed receipt code offline.")
def receipt():
    pass


@receipt.command("verify")
@click.argument("code")
@click.option("--pubkey", required=True, type=click.Path(dir_okay=False),
              help="The device's public key (PEM, e.g. device.pub from provisioning).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def verify(code, pubkey, as_json):
    """Check that the device committed the record the receipt names.

    Needs only the device's public key: no network, no journal.  Exit
    codes: 0 valid, 1 the receipt does not verify (altered, forged, wrong
    key, unsigned), 2 not a receipt code or an unreadable key.
    """
    try:
        rc = verify_code(code, pubkey)
    except DaozhangError as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "problem": type(exc).__name__, "message": str(exc)}))
            sys.exit(exc.exit_code)
        raise
    info = describe(rc)
    info["ok"] = True
    if as_json:
        click.echo(json.dumps(info, sort_keys=True))
        return
    click.echo("valid: device %s committed record %d (hash %s), signed in checkpoint %d"
               % (info["dev"], info["seq"], info["hash"], info["checkpoint_seq"]))
