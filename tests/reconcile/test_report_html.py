"""The HTML report: self-contained, escaped, and what headless Chromium
renders shows the summary counts and money (issue 6)."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from daozhang.host_tools.reconcile.report_html import daily_money, delay_histogram
from dztest import reconcile as sc

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def chromium():
    path = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: apt-get install -y chromium")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    journal, pub, _seqs = sc.write_journal(str(d))
    csv_path = d / "settlement.csv"
    csv_path.write_text(sc.csv_text(sc.scenario_rows()), encoding="utf-8")
    html = d / "report.html"
    proc = subprocess.run([sys.executable, "-m", "daozhang", "reconcile", "--journal", journal,
                           "--pubkey", pub, "--settlement", str(csv_path), "--profile", sc.PROFILE,
                           "--as-of", sc.AS_OF, "--out", str(html), "--json", "--lang", "en"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    return {"dir": d, "html": str(html), "summary": json.loads(proc.stdout)}


def run_chromium(directory, *args):
    profile = directory / "chromium-profile"
    profile.mkdir(exist_ok=True)
    proc = subprocess.run([chromium()] + CHROMIUM_FLAGS + ["--user-data-dir=%s" % profile]
                          + list(args), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_report_is_self_contained(report):
    html = open(report["html"], encoding="utf-8").read()
    for needle in ("<script", "src=", "href=", "<link", "@import", "url("):
        assert needle not in html.lower(), needle
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html


def test_chromium_renders_the_summary_counts_and_money(report):
    dom = run_chromium(report["dir"], "--dump-dom", "file://" + report["html"])
    shown = dict((name, int(n)) for name, n in re.findall(
        r'data-count="(\w+)"[^>]*><span class="n">(\d+)</span>', dom))
    expected = dict(sc.EXPECTED_COUNTS, **sc.EXPECTED_OTHER)
    assert shown == expected
    money = dict(re.findall(r'data-total="(\w+)"[^>]*><span class="v">([^<]+)</span>', dom))
    assert money == {"gross": "¥15,800.00", "expected_net": "¥15,712.00",
                     "settled": "¥12,719.00", "missing": "¥1,994.00"}
    # Problem transactions: one row each, with what failed and by how much.
    problems = re.search(r'<table id="problems">(.*?)</table>', dom, re.S).group(1)
    assert problems.count("<tr data-seq=") == 11
    assert "by ¥5.00 (settled ¥989.50" in problems          # S08 short
    assert "fee ¥10.00, contract ¥5.50 (+¥4.50)" in problems  # S09 over fee
    assert "settled under MCC 5411, contract 5812" in problems
    assert "622202******0009" in problems
    assert 'id="delay-chart"' in dom and 'id="daily-chart"' in dom and dom.count("<rect") > 8


def test_html_injection_in_csv_shows_as_text(report):
    dom = run_chromium(report["dir"], "--dump-dom", "file://" + report["html"])
    assert "<script" not in dom                 # no script element was created
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "&lt;b&gt;T9&lt;/b&gt;" in dom and "<b>T9" not in dom


def test_chromium_screenshot(report):
    shot = report["dir"] / "report.png"
    run_chromium(report["dir"], "--window-size=1200,2400", "--screenshot=%s" % shot,
                 "file://" + report["html"])
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_charts_data(report):
    labels, hist = delay_histogram(report["summary"])
    # 13 sales and the refund settled; 3 of them late (all in the 1-2 day bucket).
    assert sum(a + b for a, b in hist) == 14 and sum(b for _a, b in hist) == 3
    assert hist[labels.index("1-2 d")] == (11, 3)
    dates, daily = daily_money(report["summary"])
    assert dates == ["2027-01-04", "2027-01-06"]
    assert daily[0][0] == 15 * sc.AMOUNT - sc.REFUND and daily[1] == (sc.AMOUNT, 0)
