"""`daozhang journal verify | head | show | export`: the technician's read-only commands.

All four only read the journal (verify maps it read-only).  Exit codes:
0 ok, 1 a finding (the journal failed a check), 2 a usage or I/O error.
"""

import csv
import json
import sys

import click

from daozhang.host_tools.verify.reader import (LayoutProblem, check_geometry_fits, iter_records,
                                                latest_signed_checkpoint, load, parse_superblock)
from daozhang.host_tools.verify.errors import BadSuperblock
from daozhang.host_tools.verify.journal import verify_journal
from daozhang.host_tools.verify.anchor import make_anchor
from daozhang.host_tools.verify.errors import FINDING_MEANINGS
from daozhang.files import atomic_write

_EXIT_HELP = "Exit codes: 0 intact, 1 findings (tampering or damage), 2 usage or I/O error."
_FINDINGS_HELP = "\b\nFindings (SPEC 3.12):\n" + "\n".join(
    "  %-22s %s" % (kind, meaning) for kind, meaning in FINDING_MEANINGS.items())


def _jsonable(value):
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return dict((str(k), _jsonable(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _progress_for(label):
    """(callback, finish) drawing a rich bar on a TTY only (mpremote's habit)."""
    if not sys.stderr.isatty():
        return None, lambda: None
    from rich.console import Console
    from rich.progress import Progress
    bar = Progress(console=Console(stderr=True), transient=True)
    task = bar.add_task(label, total=None)
    bar.start()

    def update(done, total):
        bar.update(task, completed=done, total=total)
    return update, bar.stop


@click.command(epilog=_EXIT_HELP + "\n\n" + _FINDINGS_HELP)
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--pubkey", "pubkeys", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False),
              help="A trusted Ed25519 public key (PREFIX.pub from `daozhang keys new`); repeatable.")
@click.option("--anchor", type=click.Path(exists=True, dir_okay=False),
              help="An anchor written earlier by `journal head`: detects truncation and rollback.")
@click.option("--all-signatures", is_flag=True,
              help="Check every checkpoint's signature (an audit), not only the newest of each chained run.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.pass_context
def verify(ctx, path, pubkeys, anchor, all_signatures, as_json):
    """Check framing, CRC, chain, signatures, sequence, segment order and outages of the
    journal at PATH; list every finding with its record sequence and byte offset.

    The hash chain is checked everywhere; a valid signature on the newest checkpoint of a
    chained run vouches for every record and checkpoint before it, so by default only
    that one is checked per run (per key, and wherever a finding cuts the chain;
    SPEC 3.6.2).  --all-signatures checks every one."""
    update, finish = _progress_for("verifying")
    try:
        report = verify_journal(path, list(pubkeys), anchor=anchor, progress=update,
                                all_signatures=all_signatures)
    finally:
        finish()
    if as_json:
        click.echo(json.dumps(report.as_dict(), sort_keys=True))
    else:
        for finding in report.findings:
            click.echo(("note: " if finding.informational else "") + finding.describe())
        seq_range = "empty" if report.first_seq is None else "seq %d..%d" % (report.first_seq, report.last_seq)
        vouched = ", %d vouched for by the chain" % report.signatures_vouched if report.signatures_vouched else ""
        click.echo("%s: device %s, %s, %d records, %d checkpoints (%d signatures checked%s)%s: %s"
                   % (path, report.device_id or "?", seq_range, report.records, report.checkpoints,
                      report.signatures_checked, vouched, ", anchored at seq %d" % report.anchor_seq
                      if report.anchor_seq is not None else "",
                      "intact" if report.ok else "%d finding(s)" % sum(1 for f in report.findings
                                                                        if not f.informational)))
    ctx.exit(0 if report.ok else 1)


@click.command(epilog=_EXIT_HELP)
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Where to write the anchor (keep it off the terminal).")
def head(path, out_path):
    """Write the journal's newest signed checkpoint as an anchor file (SPEC 3.11), for
    a later `journal verify --anchor` to detect truncation or rollback."""
    sb, seq, frame = latest_signed_checkpoint(path)
    data = make_anchor(sb.journal_id, sb.device_id, seq, frame)
    atomic_write(out_path, data, durable=True)
    click.echo("%s: anchor for device %s at checkpoint seq %d -> %s" % (path, sb.device_id, seq, out_path))


def _summary(path):
    data, close = load(path)
    try:
        try:
            sb = parse_superblock(data[0:4096])
        except LayoutProblem as exc:
            raise BadSuperblock("BadSuperblock at offset 0: %s" % exc) from None
        check_geometry_fits(sb, len(data))
    finally:
        close()
    summary = {"device_id": sb.device_id, "journal_id": sb.journal_id.hex(), "segment_size": sb.segment_size,
               "segment_count": sb.segment_count, "first_seq": None, "last_seq": None, "records": 0,
               "checkpoints": 0, "signed_checkpoints": 0, "last_checkpoint_seq": None, "acked": 0,
               "released": 0, "outage": False, "counts": {}, "segments_in_use": 0}
    sales = []
    segments = set()
    last_checkpoint = None
    for rec in iter_records(path):
        if summary["first_seq"] is None:
            summary["first_seq"] = rec.seq
        summary["last_seq"] = rec.seq
        summary["records"] += 1
        summary["counts"][rec.type_name] = summary["counts"].get(rec.type_name, 0) + 1
        segments.add((rec.offset - 4096) // sb.segment_size)
        if rec.type == 8:
            summary["checkpoints"] += 1
            summary["signed_checkpoints"] += 1 if rec.payload["alg"] else 0
            last_checkpoint = rec
        elif rec.type == 1 and rec.payload.get("kind") == "sale":
            sales.append(rec.seq)
    summary["segments_in_use"] = len(segments)
    if last_checkpoint is not None:
        p = last_checkpoint.payload
        summary.update(last_checkpoint_seq=last_checkpoint.seq, acked=p["acked"], released=p["released"],
                       outage=p["state"] == 1)
    last = summary["last_seq"]
    summary["unsynced"] = 0 if last is None else max(0, last + 1 - summary["acked"])
    summary["unsettled_sales"] = sum(1 for s in sales if s >= summary["released"])
    summary["uncommitted"] = 0 if last is None or last_checkpoint is None else last - last_checkpoint.seq
    summary["fill"] = round(len(segments) / sb.segment_count, 4)
    return summary


@click.command(epilog=_EXIT_HELP)
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def show(path, as_json):
    """Device, sequence range, checkpoints, unsynced and unsettled counts, fill level.

    Reads and decodes; it does not check the chain or signatures (that is
    `journal verify`)."""
    s = _summary(path)
    if as_json:
        click.echo(json.dumps(s, sort_keys=True))
        return
    rng = "empty" if s["first_seq"] is None else "%d..%d" % (s["first_seq"], s["last_seq"])
    click.echo("device        %s" % s["device_id"])
    click.echo("journal id    %s" % s["journal_id"])
    click.echo("sequences     %s (%d records kept)" % (rng, s["records"]))
    click.echo("checkpoints   %d (%d signed), last at seq %s%s" % (
        s["checkpoints"], s["signed_checkpoints"], s["last_checkpoint_seq"],
        ", SIGNER OUTAGE open" if s["outage"] else ""))
    click.echo("unsynced      %d (seq >= acked %d)" % (s["unsynced"], s["acked"]))
    click.echo("unsettled     %d sales (seq >= released %d)" % (s["unsettled_sales"], s["released"]))
    if s["uncommitted"]:
        click.echo("uncommitted   %d records after the last checkpoint" % s["uncommitted"])
    click.echo("fill          %d of %d segments of %d bytes (%.0f%%)" % (
        s["segments_in_use"], s["segment_count"], s["segment_size"], 100 * s["fill"]))


_CSV_COLUMNS = ("seq", "offset", "type", "type_name", "flags", "hash", "prev", "wall_ms", "boot_id", "mono_ms",
                "payload")


def _row(rec):
    return {"seq": rec.seq, "offset": rec.offset, "type": rec.type, "type_name": rec.type_name,
            "flags": rec.flags, "hash": rec.hash.hex(), "prev": rec.prev.hex(), "wall_ms": rec.wall_ms,
            "boot_id": rec.boot_id.hex(), "mono_ms": rec.mono_ms, "payload": _jsonable(rec.payload)}


@click.command(epilog=_EXIT_HELP)
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--out", "out", type=click.File("w"), default="-", help="Output file (default: stdout).")
def export(path, fmt, out):
    """One row per record, in sequence order; byte strings as hex, the payload as JSON
    (a JSON column in CSV).  Decodes only: run `journal verify` to trust the rows."""
    if fmt == "jsonl":
        for rec in iter_records(path):
            out.write(json.dumps(_row(rec), sort_keys=True, ensure_ascii=False) + "\n")
        return
    writer = csv.DictWriter(out, fieldnames=_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for rec in iter_records(path):
        row = _row(rec)
        row["payload"] = json.dumps(row["payload"], sort_keys=True, ensure_ascii=False)
        writer.writerow(row)
