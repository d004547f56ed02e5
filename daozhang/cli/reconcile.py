"""`daozhang reconcile`: a journal against the acquirer's settlement file.

Thin: parse options, call host_tools/reconcile/run.py, write the HTML report
(host_tools/reconcile/report_html.py), print a summary or `--json`.  Exit codes:
0 every sale settled right and the journal intact, 1 any discrepancy,
bad settlement row or tampering, 2 a usage or I/O error.
"""

import json
import sys
import time

import click

from daozhang.agent.core.business_calendar import parse_rfc3339_ms
from daozhang.agent.core.errors import ValidationError
from daozhang.agent.core.settlement.alerts import format_money
from daozhang.profile import load_profile
from daozhang.cli.params.settlement_input import bank_statement, open_input, settlement_options
from daozhang.host_tools.reconcile.run import reconcile_files
from daozhang.files import atomic_write

_EPILOG = ("Exit codes: 0 all settled right and the journal intact; 1 a discrepancy "
           "(not_arrived, late, short, over_fee, mcc_jump, region_jump, unknown_settlement, "
           "duplicate_settlement, cancelled_settled), a bad settlement row, or a journal that "
           "failed verification; 2 a usage or I/O error.")


def _as_of(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_rfc3339_ms(value, "--as-of")
    except ValidationError:
        raise click.BadParameter("expected RFC 3339 with an offset, such as "
                                 "2027-01-08T00:00:00+08:00, got %r" % value) from None


def _progress(label):
    """(callback, finish): a bar on a TTY only, as `journal verify` draws it."""
    if not sys.stderr.isatty():
        return None, lambda: None
    from rich.progress import Progress
    bar = Progress(transient=True)
    task = bar.add_task(label, total=None)
    bar.start()
    return (lambda done, total: bar.update(task, completed=done, total=total)), bar.stop


def _write_atomic(path, text):
    atomic_write(path, text, durable=True)


def _human(summary, out):
    c, t = summary["counts"], summary["totals_text"]
    j, s = summary["journal"], summary["settlement_file"]
    lines = []
    if not j["ok"]:
        bad = [f for f in j["findings"] if not f["informational"]]
        lines.append("JOURNAL FAILED VERIFICATION: %d finding(s); the results below count "
                     "only the records that remain (%d transaction(s) left out)"
                     % (len(bad), len(j["excluded"])))
        lines += ["  %s at seq %s: %s" % (f["kind"], f["seq"], f["message"]) for f in bad[:10]]
        if len(bad) > 10:
            lines.append("  ... %d more findings (see --json)" % (len(bad) - 10))
        if any(f["kind"] == "UnknownKey" for f in bad):
            lines.append("hint: signed by a key not given with --pubkey: is it this device's "
                         "key (PREFIX.pub from provisioning)?")
    for bad_row in s["bad_rows"][:20]:
        lines.append("%s: line %d: %s" % (s["path"], bad_row["line"], bad_row["reason"]))
    if len(s["bad_rows"]) > 20:
        lines.append("... %d more bad rows (see --json)" % (len(s["bad_rows"]) - 20))
    lines.append("as of %s: %d transactions, %d settlement rows (%d bad)"
                 % (summary["as_of"], j["transactions"], s["rows"], len(s["bad_rows"])))
    lines.append("  " + ", ".join("%s %d" % (n, v) for n, v in c.items()))
    lines.append("  gross %s, expected net %s, settled %s, missing %s"
                 % (t["gross"], t["expected_net"], t["settled"], t["missing"]))
    if s.get("card_masked"):
        lines.append("  %d row(s) carried a full card number: masked to 6 + 4 (lines %s)" % (
            s["card_masked"], ", ".join(str(f["line"]) for f in s["card_findings"][:10])))
    lines += _payout_lines(summary)
    if out:
        lines.append("report: %s" % out)
    lines.append("all settled right" if summary["ok"] else
                 "not all in order: " + "; ".join(summary["verdict"]))
    return "\n".join(lines)


def _payout_lines(summary):
    payouts = summary.get("payouts")
    if not payouts:
        return []
    cur = summary["currency"]
    c = payouts["counts"]
    lines = ["bank %s: %d payout(s) arrived, %d missing, %d short" % (
        payouts["bank"]["path"], c["ok"], c["deposit_missing"], c["deposit_short"])]
    for p in payouts["days"]:
        if p["status"] not in ("deposit_missing", "deposit_short"):
            continue
        sales = ", ".join(p["sales"][:8]) + (" ..." if len(p["sales"]) > 8 else "")
        received = ("received %s (bank line %s)" % (format_money(p["received"], cur),
                                                    p["bank_line"])
                    if p["received"] is not None else "nothing received")
        lines.append("  %s: settlement day %s: expected %s, %s; sales: %s" % (
            p["status"], p["day"], format_money(p["expected"], cur), received, sales or "-"))
    return lines


@click.command(epilog=_EPILOG)
@click.option("--journal", "journal_path", required=True,
              type=click.Path(exists=True, dir_okay=False), help="The journal file (pulled "
              "with `daozhang device pull`).")
@click.option("--pubkey", "pubkeys", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="The device's Ed25519 public key (PREFIX.pub); repeatable.")
@click.option("--settlement", "settlement_path", required=True,
              type=click.Path(exists=True, dir_okay=False), help="The acquirer's settlement file "
              "(any --format, or a --map layout).")
@click.option("--profile", "profile_path", required=True,
              type=click.Path(exists=True, dir_okay=False), help="The merchant profile (TOML).")
@click.option("--as-of", "as_of", callback=_as_of, metavar="TIME",
              help="Judge deadlines at this RFC 3339 time (default: now).")
@click.option("--anchor", type=click.Path(exists=True, dir_okay=False),
              help="An anchor from `journal head`: also detects truncation and rollback.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False),
              help="Write the HTML report here (one self-contained file).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--lang", type=click.Choice(["en", "zh-CN"]), default=None,
              help="The report's language (default: the profile's `locale`).")
@settlement_options
@click.pass_context
def reconcile(ctx, journal_path, pubkeys, settlement_path, profile_path, as_of, anchor, out_path,
              as_json, lang, fmt, map_path, settled_at, bank_path, bank_map_path):
    """Hold a journal against the acquirer's settlement file: every sale with its
    status (ok, pending, or what went wrong and by how much), money totals, and an
    HTML report readable offline.  The journal is verified first; a journal that
    fails verification is reported plainly and still reconciled on what remains."""
    profile = load_profile(profile_path)
    if lang is not None:
        profile["locale"] = lang
    settlement = open_input(settlement_path, fmt, map_path, settled_at, quiet=as_json)
    bank = bank_statement(bank_path, bank_map_path)
    as_of_ms = as_of if as_of is not None else time.time_ns() // 1_000_000
    update, finish = _progress("verifying journal")
    try:
        summary = reconcile_files(journal_path, pubkeys, settlement, profile, as_of_ms,
                                  anchor=anchor, progress=update, bank=bank)
    finally:
        finish()
    if out_path:
        from daozhang.host_tools.reconcile.report_html import render_report
        _write_atomic(out_path, render_report(summary))
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
    else:
        click.echo(_human(summary, out_path))
    ctx.exit(summary["exit_code"])
