"""`daozhang journal verify | head | show | export` as real processes: output and exit codes
(0 intact, 1 findings, 2 usage or I/O), on journals made by the real writer."""

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from dztest import journal_forge as forge
from dztest import journal_samples as samples


def run(*args):
    proc = subprocess.run([sys.executable, "-m", "daozhang", "journal"] + list(args), capture_output=True,
                          text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    key = forge.new_key()
    journal = str(d / "j.dzj")
    samples.write_journal(journal, key, records=40, per_commit=4, release=False)
    pub = samples.write(d, "dev.pub", forge.pem_public(key))
    model = forge.Journal.parse(samples.read(journal))
    txn = [r for r in model.records() if r.rtype == forge.TRANSACTION][3]
    txn.payload["amount"] = 1
    model.rechain()
    tampered = samples.write(d, "tampered.dzj", model.render())
    return {"dir": d, "key": key, "journal": journal, "pub": pub, "tampered": tampered, "txn_seq": txn.seq}


def test_verify_intact(files):
    rc, out, err = run("verify", files["journal"], "--pubkey", files["pub"])
    assert rc == 0, err
    assert "intact" in out and err == ""          # no progress bar off a TTY


def test_verify_lists_findings_with_seq_and_offset(files):
    before = samples.file_state(files["tampered"], files["pub"])
    rc, out, err = run("verify", files["tampered"], "--pubkey", files["pub"])
    assert rc == 1
    assert "BadSignature at seq" in out and "offset" in out and "finding(s)" in out
    assert samples.file_state(files["tampered"], files["pub"]) == before


def test_verify_json(files):
    rc, out, _ = run("verify", files["tampered"], "--pubkey", files["pub"], "--json")
    report = json.loads(out)
    assert rc == 1 and report["ok"] is False
    finding = report["findings"][0]
    assert finding["kind"] == "BadSignature" and finding["seq"] > files["txn_seq"] and finding["offset"] > 4096


def test_head_then_rollback_is_caught(files):
    old = samples.write(files["dir"], "old.dzj", samples.read(files["journal"]))
    live = samples.write(files["dir"], "live.dzj", samples.read(files["journal"]))
    from daozhang.agent.journal_file import JournalFile
    with JournalFile.open(live, samples.SwitchableSigner(files["key"]), clock=samples.StepClock(1800000000000)) as j:
        samples.append_sales(j, 8, start=100, release=False)
    anchor = str(files["dir"] / "head.anchor")
    rc, out, _ = run("head", live, "--out", anchor)
    assert rc == 0 and os.path.getsize(anchor) > 100
    rc, out, _ = run("verify", live, "--pubkey", files["pub"], "--anchor", anchor)
    assert rc == 0 and "anchored at seq" in out
    rc, out, _ = run("verify", old, "--pubkey", files["pub"], "--anchor", anchor)
    assert rc == 1 and "Rollback" in out


@pytest.mark.parametrize("args, message", [
    (["verify", "{journal}"], "--pubkey"),
    (["verify", "{journal}", "--pubkey", "{journal}"], "not a PEM public key"),
    (["verify", "{dir}/missing.dzj", "--pubkey", "{pub}"], "does not exist"),
    (["verify", "{journal}", "--pubkey", "{pub}", "--anchor", "{pub}"], "anchor"),
])
def test_usage_and_input_errors_exit_2(files, args, message):
    rc, out, err = run(*[a.format(**files) for a in args])
    assert rc == 2
    assert err.startswith("daozhang: ") and message in err


def test_show(files):
    rc, out, _ = run("show", files["journal"], "--json")
    shown = json.loads(out)
    assert rc == 0 and shown["device_id"] == "pos-7" and shown["first_seq"] == 0
    assert shown["counts"]["transaction"] == 40
    assert shown["unsynced"] == shown["last_seq"] + 1          # nothing acked
    assert shown["unsettled_sales"] == 40
    rc, out, _ = run("show", files["journal"])
    assert rc == 0 and "unsettled     40 sales" in out


def test_export_jsonl_and_csv(files):
    rc, out, _ = run("export", files["journal"], "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and [r["seq"] for r in rows] == list(range(len(rows)))
    assert all(len(r["hash"]) == 64 for r in rows)
    sales = [r for r in rows if r["type_name"] == "transaction"]
    assert sales and sales[0]["payload"]["kind"] == "sale"
    out_file = str(files["dir"] / "export.csv")
    rc, _, _ = run("export", files["journal"], "--format", "csv", "--out", out_file)
    with open(out_file) as f:
        table = list(csv.DictReader(io.StringIO(f.read())))
    assert rc == 0 and len(table) == len(rows)
    k = rows.index(sales[0])
    assert json.loads(table[k]["payload"])["amount"] == rows[k]["payload"]["amount"]


def test_progress_bar_only_on_a_tty(files):
    """Under a real pty the bar is drawn (and cleared); off a TTY stderr stays empty."""
    import pty
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(sys.executable, [sys.executable, "-m", "daozhang", "journal", "verify", files["journal"],
                                   "--pubkey", files["pub"]])
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"verifying" in out and b"intact" in out
