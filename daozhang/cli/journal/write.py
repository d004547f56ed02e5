"""`daozhang journal init` and `daozhang journal append`."""

import sys
import time

import click

from daozhang.agent.core import strict_json
from daozhang.agent.core.business_calendar import parse_rfc3339_ms
from daozhang.agent.core.errors import DaozhangError, ValidationError
from daozhang.agent.core.intake.txn import validate
from daozhang.agent.core.journal import record
from daozhang.agent.journal_file import JournalFile, create_journal
from daozhang.signing import load_signer
from daozhang.cli.params.card_args import refuse_card_data
from daozhang.cli.params.sizes import ByteSize


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--device-id", required=True, callback=refuse_card_data, help="The terminal's id: letters, digits, '.', '_', '-'.")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help="The device's private key (PREFIX.key from `daozhang keys new`).")
@click.option("--size", type=ByteSize(), default="64MiB", show_default=True, help="Total journal size.")
@click.option("--segment-size", type=ByteSize(), default=None,
              help="Segment size (default: size/64, 64KiB to 1MiB).")
@click.option("--sector-size", type=click.Choice(["512", "1024", "2048", "4096"]), default="512", show_default=True,
              help="The storage's tear unit (board file journal.sector_size): each commit ends on one.")
def init(path, device_id, key_path, size, segment_size, sector_size):
    """Create a preallocated journal at PATH and commit its first (boot) record."""
    signer = load_signer(key_path)
    geo = create_journal(path, device_id, size=size, segment_size=segment_size, sector_size=int(sector_size))
    with JournalFile.open(path, signer) as journal:
        stats = journal.stats()
    click.echo("%s: device %s, %d segments of %d bytes, next sequence %d"
               % (path, device_id, geo.segment_count, geo.segment_size, stats["next_seq"]))


def _parse_line(line, number, now_ms=None):
    try:
        obj = strict_json.loads(line)
    except strict_json.DuplicateKey as exc:
        raise ValidationError("", "line %d: %s; give each key once" % (number, exc), "bad_json") from None
    except ValueError as exc:
        raise ValidationError("", "line %d: not JSON (%s)" % (number, exc.msg), "malformed") from None
    try:
        return validate(obj, now_ms)
    except ValidationError as exc:
        refused = ValidationError("", "line %d: %s" % (number, exc.message), exc.code)
        refused.field = exc.field
        raise refused from None


def _now_ms(now):
    if now is None:
        return None
    if now == "system":
        return int(time.time() * 1000)
    try:
        return parse_rfc3339_ms(now, "--now")
    except ValidationError as exc:
        raise click.BadParameter("%s (or `system`)" % exc.message, param_hint="--now") from None


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help="The device's private key.")
@click.option("--now", "now", default=None, metavar="TIME|system",
              help="Refuse sales more than 30 days before or 1 day after TIME (RFC 3339, or "
                   "`system` for this machine's clock) with time_out_of_range, as the intake does.")
@click.argument("source", type=click.File("r"), default="-", required=False)
def append(path, key_path, now, source):
    """Append transactions given as JSON lines (stdin by default).

    Prints `SEQ HASH` for each record as soon as it is committed (durable and
    signed).  A bad line is refused with its line number and nothing of it is
    written; the others are still appended, and the exit code is then 2.
    """
    now_ms = _now_ms(now)
    signer = load_signer(key_path)
    refused = 0
    with JournalFile.open(path, signer) as journal:
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                payload = _parse_line(line, number, now_ms)
                result = journal.append(record.TYPE_TRANSACTION, payload)
            except ValidationError as exc:
                refused += 1
                click.echo("daozhang: refused: %s" % exc, err=True)
                continue
            click.echo("%d %s" % (result.seq, result.hash.hex()))
            sys.stdout.flush()
    if refused:
        raise DaozhangError("%d line(s) refused, nothing of them written" % refused)
