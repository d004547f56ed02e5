"""The reconcile report in Simplified Chinese (issue 14): a CNY profile gets
zh-CN by default, and headless Chromium draws the characters with a real
CJK font, not as tofu (the .notdef box every missing glyph shares)."""

import json
import os
import subprocess
import sys

import pytest

from dztest import reconcile as sc

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
# Distinct characters the report shows: drawn with a real font each differs;
# as tofu every one is the same empty box.
GLYPHS = "结算对账银行到账逾期"


@pytest.fixture(scope="module")
def zh_report(tmp_path_factory):
    d = tmp_path_factory.mktemp("report_zh")
    journal, pub, _seqs = sc.write_journal(str(d))
    csv_path = d / "settlement.csv"
    csv_path.write_text(sc.csv_text(sc.scenario_rows()), encoding="utf-8")
    html = d / "report.html"
    # No --lang: examples/merchant.toml is a CNY profile, so zh-CN.
    proc = subprocess.run([sys.executable, "-m", "daozhang", "reconcile", "--journal", journal,
                           "--pubkey", pub, "--settlement", str(csv_path), "--profile", sc.PROFILE,
                           "--as-of", sc.AS_OF, "--out", str(html), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    return {"dir": d, "html": str(html), "summary": json.loads(proc.stdout)}


def test_a_cny_profile_gets_the_report_in_chinese(zh_report):
    text = open(zh_report["html"], encoding="utf-8").read()
    assert zh_report["summary"]["locale"] == "zh-CN"
    assert '<html lang="zh-CN">' in text
    for words in ("结算对账", "问题交易", "结算正确", "存在问题", "Noto Sans CJK SC"):
        assert words in text, words
    # The JSON stays in English (machines read it); the English words are gone from the page.
    assert "Problem transactions" not in text and "settled right" not in text
    assert any("transactions with a problem" in r for r in zh_report["summary"]["verdict"])


def test_chromium_draws_the_chinese_glyphs_not_tofu(zh_report):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed and CI is set")
        pytest.skip("chromium is not installed")
    shot = zh_report["dir"] / "report_zh.png"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1600})
            page.goto("file://" + zh_report["html"])
            assert "结算对账" in page.inner_text("h1")
            # Each glyph drawn alone in the body's font, as pixels.
            images = page.evaluate("""(glyphs) => {
                const font = getComputedStyle(document.body).fontFamily;
                return Array.from(glyphs).map((g) => {
                    const c = document.createElement("canvas");
                    c.width = 40; c.height = 40;
                    const x = c.getContext("2d");
                    x.fillStyle = "#fff"; x.fillRect(0, 0, 40, 40);
                    x.fillStyle = "#000"; x.font = "32px " + font; x.textBaseline = "top";
                    x.fillText(g, 2, 2);
                    return c.toDataURL();
                });
            }""", GLYPHS)
            page.screenshot(path=str(shot), full_page=False)
        finally:
            browser.close()
    assert len(set(images)) == len(set(GLYPHS)), "CJK characters render alike: tofu (no CJK font)"
    assert os.path.getsize(shot) > 10000
