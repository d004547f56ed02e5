"""The fleet view in headless Chromium (Debian's chromium, driven by Playwright).

A small fleet syncs through the test's mosquitto into the backend (one
worker, --http on a free port); then the page must show the same numbers as
`daozhang backend stats --json`, a terminal page its last verified
checkpoint, and, once the terminals stop talking, every one of them as
silent within the silent-after time plus the page's refresh interval.
Screenshots go to the test's tmp dir (their paths are printed).
"""

import json
import os
import subprocess
import sys
import threading

import pytest

from dztest.fleet_world import FleetWorld

pytestmark = [pytest.mark.mqtt]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
TERMINALS = 24
SILENT_AFTER_S = 4
REFRESH_S = 2


def _browser(playwright):
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed and CI is set")
        pytest.skip("chromium is not installed")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


def _stats_cli(db):
    out = subprocess.run([sys.executable, "-m", "daozhang", "backend", "stats", "--json", "--db", db],
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_fleet_view_matches_stats_and_shows_silent_terminals(tmp_path, tls_broker):
    sync_api = pytest.importorskip("playwright.sync_api")
    from daozhang.backend.store import open_store
    from daozhang.fleet.sim import run_sim

    db = str(tmp_path / "backend.db")
    world = FleetWorld(tmp_path, tls_broker, db)
    try:
        world.start_backend(workers=1, http="127.0.0.1:0", silent_after=SILENT_AFTER_S,
                            extra=["--overdue-after", "0"])
        reports = []
        run = threading.Thread(target=lambda: reports.append(
            run_sim(world.sim_settings(TERMINALS, rate=30, duration=8, backlog=5))))
        run.start()
        url = world.http_address()
        with sync_api.sync_playwright() as p:
            browser = _browser(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            expect = sync_api.expect
            page.goto(url)           # loaded once, while the fleet is selling
            expect(page.locator("#terminals-online")).to_have_text(str(TERMINALS), timeout=120000)
            run.join(300)
            assert reports and reports[0]["drained"], reports
            with open_store(db) as store:
                # Two firing alerts and an acquirer row with no receipt, for the panels.
                store.add_alert("sim-000001", None, "settlement_overdue", "firing", "warning", {"at": 1})
                store.add_alert("sim-000002", None, "clock_untrusted", "firing", "critical", {"at": 2})
                store.add_settlement("ACQ-404", {"acquirer": "lakala", "amount": 990}, "unrouted")
            # The terminals said goodbye and went quiet: the page (never
            # reloaded) shows every one silent within SILENT_AFTER_S plus
            # its refresh interval, and offline with nothing left to send.
            expect(page.locator("#terminals-silent")).to_have_text(
                str(TERMINALS), timeout=(SILENT_AFTER_S + 3 * REFRESH_S + 10) * 1000)
            expect(page.locator("#terminals-offline")).to_have_text(str(TERMINALS))
            expect(page.locator("#updated")).not_to_have_text("now")   # it came by a live refresh
            expect(page.locator("#backlog-total")).to_have_text("0")
            stats = _stats_cli(db)
            for key in ("devices", "records", "receipts", "alerts", "findings"):
                expect(page.locator("#stat-" + key)).to_have_text(str(stats[key]),
                                                                  timeout=REFRESH_S * 5000)
            assert stats["devices"] == TERMINALS and stats["findings"] == 0
            expect(page.locator("#alerts-firing")).to_have_text("2")
            expect(page.locator("#discrepancies")).to_contain_text("lakala")
            overdue = page.locator("#overdue-total").inner_text()
            assert overdue.startswith("¥") and overdue != "¥0.00", overdue
            shot = str(tmp_path / "fleet-view.png")
            page.screenshot(path=shot, full_page=True)
            print("screenshot: " + shot)
            page.click("#silent-list a >> nth=0")
            expect(page.locator("#checkpoint-sig")).to_contain_text("verified")
            seq = int(page.locator("#checkpoint-seq").inner_text())
            assert seq > 0
            shot = str(tmp_path / "fleet-terminal.png")
            page.screenshot(path=shot, full_page=True)
            print("screenshot: " + shot)
            metrics = page.request.get(url + "metrics").text()
            assert "daozhang_records_stored_total" in metrics
            assert "daozhang_workers_alive 1.0" in metrics
            browser.close()
    finally:
        world.close()
