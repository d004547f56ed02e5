"""`daozhang reconcile` through the real CLI: a real signed journal, a
synthetic settlement CSV with every kind of discrepancy, exact counts and
totals; bad rows; a tampered journal; usage errors."""

import json
import os
import subprocess
import sys

import pytest

from daozhang.agent.core.business_calendar import BusinessCalendar, parse_rfc3339_ms
from daozhang.agent.core.settlement.settlement_checks import COUNT_NAMES, reconcile as core_reconcile
from daozhang.profile import load_profile
from daozhang.timezone import timezone_for
from daozhang.host_tools.verify.reader import iter_records
from daozhang.host_tools.reconcile.run import run_ledger
from daozhang.settlement_files import parse_settlement_text
from dztest import reconcile as sc


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "daozhang", "reconcile"] + list(args),
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("reconcile")
    journal, pub, seqs = sc.write_journal(str(d))
    csv_path = d / "settlement.csv"
    csv_path.write_text(sc.csv_text(sc.scenario_rows()), encoding="utf-8")
    return {"dir": d, "journal": journal, "pub": pub, "seqs": seqs, "csv": str(csv_path)}


def base_args(w, csv_path=None, journal=None):
    return ["--journal", journal or w["journal"], "--pubkey", w["pub"], "--settlement",
            csv_path or w["csv"], "--profile", sc.PROFILE, "--as-of", sc.AS_OF, "--lang", "en"]


def test_every_discrepancy_counted_exactly(world):
    out_html = str(world["dir"] / "report.html")
    rc, out, err = run_cli(*base_args(world), "--json", "--out", out_html)
    assert rc == 1, err
    s = json.loads(out)
    assert list(s["counts"]) == list(COUNT_NAMES)
    assert s["counts"] == sc.EXPECTED_COUNTS
    assert s["totals"] == sc.EXPECTED_TOTALS
    assert s["other_counts"] == sc.EXPECTED_OTHER
    assert s["totals_text"]["gross"] == "¥15,800.00"
    assert s["journal"]["ok"] is True and s["journal"]["excluded"] == []
    assert s["settlement_file"] == {"path": world["csv"], "format": "csv", "rows": 18,
                                    "format_reason": "a header with acquirer_ref (the "
                                    "documented layout)",
                                    "bad_rows": [], "bad_count": 0, "repeated": 0, "skipped": 0,
                                    "card_masked": 0, "card_findings": [], "other_lines": {}}
    by_id = dict((t["pos_txn_id"], t) for t in s["transactions"])
    assert len(by_id) == 21
    assert by_id["S06"]["checks"] == ["late"] and by_id["S06"]["late_by_ms"] == 11 * 3600 * 1000
    assert by_id["S08"]["checks"] == ["short"] and by_id["S08"]["shortfall"] == 500
    assert by_id["S09"]["checks"] == ["over_fee"] and by_id["S09"]["fee_excess"] == 450
    assert by_id["S18"]["checks"] == ["late", "mcc_jump"] and by_id["S18"]["mcc"] == "5411"
    assert by_id["S11"]["region"] == "1000"
    assert by_id["S12"]["checks"] == ["duplicate_settlement"]
    assert by_id["S12"]["acquirer_refs"] == ["DUP12a", "DUP12b"]
    assert by_id["S13"]["checks"] == ["not_arrived"] and by_id["S13"]["settled_at"] is None
    assert by_id["S15"]["status"] == "pending"
    assert by_id["S05"]["status"] == "ok" and by_id["S05"]["lines"] == [6]   # matched by auth
    assert by_id["S17"]["checks"] == ["cancelled_settled"]
    assert sorted(u["acquirer_ref"] for u in s["unknown_settlements"]) == [
        "<script>alert(1)</script>", "UNK1"]
    assert by_id["S01"]["seq"] == world["seqs"]["S01"]
    assert os.path.getsize(out_html) > 1000


def test_summary_equals_the_shared_reconcile(world):
    """run_ledger keeps the ledger for details; its numbers must be reconcile()'s."""
    profile = load_profile(sc.PROFILE)
    calendar = BusinessCalendar.from_profile(profile, timezone_for(profile["timezone"]))
    txns = []
    for rec in iter_records(world["journal"]):
        if rec.type == 1:
            txns.append(dict(rec.payload, seq=rec.seq))
    rows = parse_settlement_text(open(world["csv"], encoding="utf-8").read()).rows
    as_of = parse_rfc3339_ms(sc.AS_OF)
    _ledger, summary, refused = run_ledger(profile, calendar, txns, rows, as_of)
    assert refused == []
    assert summary == core_reconcile(profile, calendar, txns, rows, as_of)


def test_all_settled_right_exits_0(world, tmp_path):
    by_id = dict((t["pos_txn_id"], t) for t in sc.scenario_transactions())
    rows = [sc.row_for(by_id["S%02d" % i], "OK%d" % i) for i in range(1, 15)]
    rows += [sc.row_for(by_id["S18"], "OK18"), sc.row_for(by_id["RF1"], "REF1")]
    path = tmp_path / "good.csv"
    path.write_text(sc.csv_text(rows), encoding="utf-8")
    rc, out, err = run_cli(*base_args(world, str(path)))
    assert rc == 0, out + err
    assert "all settled right" in out and "ok 16, not_arrived 0" in out


def test_bad_rows_reported_with_line_numbers_good_rows_counted(world, tmp_path):
    text = sc.csv_text(sc.scenario_rows()).splitlines()
    text.insert(3, "BAD1,,,,,,,,12.5,0,1,2027-01-05T22:00:00+08:00,,")          # line 4
    text.insert(6, "BAD2,,,,,,,,100,0,100,next tuesday,,")                       # line 7
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    rc, out, err = run_cli(*base_args(world, str(path)), "--json")
    assert rc == 1
    s = json.loads(out)
    assert [b["line"] for b in s["settlement_file"]["bad_rows"]] == [4, 7]
    assert s["settlement_file"]["bad_rows"][1]["reason"].startswith("settled_at: expected RFC 3339")
    assert s["settlement_file"]["rows"] == 18
    assert s["counts"] == sc.EXPECTED_COUNTS           # the good rows all still count
    rc, out, _err = run_cli(*base_args(world, str(path)))
    assert "bad.csv: line 4: amount: expected an integer" in out


def test_tampered_journal_is_reported_and_its_record_left_out(world, tmp_path):
    tampered = str(tmp_path / "tampered.dzj")
    with open(world["journal"], "rb") as src, open(tampered, "wb") as dst:
        dst.write(src.read())
    seq = world["seqs"]["S09"]
    offset = next(r.offset for r in iter_records(tampered) if r.seq == seq)
    sc.tamper_amount(tampered, offset, sc.AMOUNT, 70000)   # ¥1,000.00 -> ¥700.00
    rc, out, err = run_cli(*base_args(world, journal=tampered), "--json",
                           "--out", str(tmp_path / "t.html"))
    assert rc == 1, err
    s = json.loads(out)
    assert s["journal"]["ok"] is False
    kinds = set(f["kind"] for f in s["journal"]["findings"] if not f["informational"])
    assert kinds and kinds <= {"ChainBroken", "BadCheckpoint", "BadSignature"}
    assert [x["pos_txn_id"] for x in s["journal"]["excluded"]] == ["S09"]
    # Its settlement no longer has a trusted sale to match: unknown, not "ok".
    assert s["counts"]["over_fee"] == 0
    assert s["counts"]["unknown_settlement"] == sc.EXPECTED_COUNTS["unknown_settlement"] + 1
    assert "S09" not in [t["pos_txn_id"] for t in s["transactions"]]
    rc, out, _err = run_cli(*base_args(world, journal=tampered))
    assert out.startswith("JOURNAL FAILED VERIFICATION")
    html = open(str(tmp_path / "t.html"), encoding="utf-8").read()
    assert 'id="tamper"' in html and "FAILED verification" in html


def test_wrong_pubkey_is_tampering_not_a_crash(world, tmp_path):
    from daozhang.signing import generate_keypair
    generate_keypair(str(tmp_path / "other"))
    args = base_args(world)
    args[args.index("--pubkey") + 1] = str(tmp_path / "other.pub")
    rc, out, _err = run_cli(*args, "--json")
    assert rc == 1
    s = json.loads(out)
    assert s["journal"]["ok"] is False
    assert set(f["kind"] for f in s["journal"]["findings"]) == {"UnknownKey"}
    # Nothing vouches for any record: every transaction is left out, every
    # settlement is unknown.
    assert len(s["journal"]["excluded"]) == 21 and s["transactions"] == []
    assert s["counts"]["unknown_settlement"] == 18
    rc, out, _err = run_cli(*args)
    assert "hint: signed by a key not given with --pubkey" in out


@pytest.mark.parametrize("change, fragment", [
    (("--as-of", "yesterday"), "expected RFC 3339"),
    (("--settlement", "/nonexistent.csv"), "does not exist"),
])
def test_usage_errors_exit_2(world, change, fragment):
    args = base_args(world)
    args[args.index(change[0]) + 1] = change[1]
    rc, _out, err = run_cli(*args)
    assert rc == 2 and fragment in err


def test_csv_without_required_columns_exits_2(world, tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("ref,amt\nA,1\n", encoding="utf-8")
    rc, _out, err = run_cli(*base_args(world, str(path)))
    assert rc == 2
    said, error = err.splitlines()
    assert "read as csv (no other format recognised" in said
    assert error.startswith("daozhang: ") and "lacks required column(s)" in error and "--map" in error


def test_mapping_option(world, tmp_path):
    """--map: the same settlements in a bank's layout give the same counts."""
    cols = {"acquirer_ref": "流水号", "amount": "金额", "fee": "手续费",
            "settled_amount": "清算金额", "settled_at": "清算时间", "txn_time": "交易时间"}
    mapping = tmp_path / "bank.toml"
    mapping.write_text("[amounts]\nscale = 2\n[times]\nformat = \"%Y-%m-%d %H:%M:%S\"\n"
                       "timezone = \"Asia/Shanghai\"\n[columns]\n" + "".join(
                           '%s = "%s"\n' % kv for kv in cols.items()), encoding="utf-8")
    rows = []
    for r in sc.scenario_rows():
        r = dict(r)
        for name in ("amount", "fee", "settled_amount"):
            r[name] = "%s%d.%02d" % ("-" if r[name] < 0 else "", abs(r[name]) // 100,
                                     abs(r[name]) % 100)
        for name in ("settled_at", "txn_time"):
            r[name] = r[name][:10] + " " + r[name][11:19]
        rows.append(dict((cols.get(k, k), v) for k, v in r.items()))
    header = [cols.get(c, c) for c in sc.COLUMNS]
    path = tmp_path / "bank.csv"
    path.write_text(sc.csv_text(rows, header), encoding="utf-8")
    rc, out, err = run_cli(*base_args(world, str(path)), "--map", str(mapping), "--json")
    assert rc == 1, err
    s = json.loads(out)
    assert s["counts"] == sc.EXPECTED_COUNTS and s["totals"] == sc.EXPECTED_TOTALS


def test_odd_journal_transactions_are_left_out_not_fatal(tmp_path):
    """A signed journal can still hold what the checks refuse (one pos_txn_id
    with two contents; a payload that is not a transaction): listed, not fatal."""
    good = sc.txn("S01", sc.MONDAY % "10:01:00", n=1)
    twin = sc.txn("S01", sc.MONDAY % "10:01:00", n=1, amount=5)
    journal, pub, _seqs = sc.write_journal(str(tmp_path), [good, twin, {"pos_txn_id": b"\x00"}])
    path = tmp_path / "s.csv"
    path.write_text(sc.csv_text([sc.row_for(good, "OK1")]), encoding="utf-8")
    rc, out, err = run_cli("--journal", journal, "--pubkey", pub, "--settlement", str(path),
                           "--profile", sc.PROFILE, "--as-of", sc.AS_OF, "--json",
                           "--out", str(tmp_path / "r.html"))
    s = json.loads(out)
    assert s["journal"]["ok"] is True
    reasons = [(x["pos_txn_id"], x["reason"]) for x in s["journal"]["excluded"]]
    assert reasons[0][0] == "S01" and "recorded twice with different content" in reasons[0][1]
    assert reasons[1] == (None, "not a transaction payload: pos_txn_id: expected str, got bytes")
    assert s["counts"]["ok"] == 1 and s["journal"]["transactions"] == 1
    assert [x["why"] for x in s["journal"]["excluded"]] == ["refused", "refused"]
    assert rc == 1, err        # the money is right, but two records could not be checked


def test_uncommitted_tail_is_left_out_without_a_finding(world, tmp_path):
    """A crash before the last commit's checkpoint: the void in that commit was
    never receipted, so S17 is an ordinary sale and its settlement is right."""
    torn = str(tmp_path / "torn.dzj")
    with open(world["journal"], "rb") as src, open(torn, "wb") as dst:
        dst.write(src.read())
    last = list(iter_records(torn))[-1]
    assert last.type_name == "checkpoint"
    with open(torn, "r+b") as f:          # the checkpoint frame never reached the disk
        f.seek(last.offset + 4)
        n = int.from_bytes(f.read(4), "big")
        f.seek(last.offset)
        f.write(bytes(12 + n))
    rc, out, err = run_cli(*base_args(world, journal=torn), "--json")
    s = json.loads(out)
    assert s["journal"]["ok"] is True
    assert [f["kind"] for f in s["journal"]["findings"]] == ["UncommittedTail"]
    assert [(x["pos_txn_id"], x["why"]) for x in s["journal"]["excluded"]] == [
        ("V17", "uncommitted")]
    assert s["counts"]["ok"] == sc.EXPECTED_COUNTS["ok"] + 1
    assert s["other_counts"] == {"pending": 1, "cancelled": 2, "cancelled_settled": 0}
    assert rc == 1, err            # the scenario's other discrepancies remain
