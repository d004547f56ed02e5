"""`daozhang txn submit`: hand one transaction to a running agent (the POS side).

Prints the receipt as one JSON object (seq, hash, receipt_code, ...); on a
refusal prints {"error": CODE, "message": ...} and exits 1 (refused by the
agent) or 2 (no agent, a broken connection, bad input).
"""

import json
import sys

import click

from daozhang.agent.core import strict_json
from daozhang.client import DEFAULT_SOCKET, AgentUnavailable, ClientError, Client, Refused


@click.group(help="Submit a transaction to a running agent (POS side).")
def txn():
    pass


def _fail(code, message, exit_code, field=None):
    out = {"error": code, "message": message}
    if field:
        out["field"] = field
    click.echo(json.dumps(out, sort_keys=True))
    sys.exit(exit_code)


@txn.command("submit")
@click.option("--socket", "socket_path", default=DEFAULT_SOCKET, show_default=True,
              help="The agent's intake socket.")
@click.option("--json", "json_text", default=None, help="The transaction JSON as text.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the commit.")
@click.argument("file", required=False, type=click.File("r"))
def submit(socket_path, json_text, timeout, file):
    """Submit one transaction (--json TEXT, FILE, or stdin); print its receipt.

    Exit codes: 0 committed, 1 refused by the agent (see `error`), 2 no
    agent, a broken connection or unreadable input.
    """
    if json_text is not None and file is not None:
        _fail("usage", "give the transaction as --json TEXT or as FILE, not both", 2)
    text = json_text if json_text is not None else (file or sys.stdin).read()
    try:
        obj = strict_json.loads(text)
    except strict_json.DuplicateKey as exc:
        _fail("bad_json", "the transaction JSON: %s; give each key once" % exc, 2)
    except ValueError as exc:
        _fail("bad_json", "the transaction is not JSON (line %d column %d)" % (exc.lineno, exc.colno), 2)
    try:
        with Client(socket_path, timeout) as agent:
            receipt = agent.submit(obj)
    except Refused as exc:
        _fail(exc.code, exc.message, 1, exc.field)
    except AgentUnavailable as exc:
        _fail("agent_unavailable", str(exc), 2)
    except ClientError as exc:
        _fail("protocol_error", str(exc), 2)
    click.echo(json.dumps(receipt, sort_keys=True))
