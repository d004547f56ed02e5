"""Guard: the fixtures' sales never go stale, whatever the date.

A fixture that dated its sales a fixed day made the whole suite fail a week
after it was written: the agent's watchdog judged every sale overdue,
raised thousands of alerts, and the daemon and sync tests timed out.

Here the sale-making fixtures run in a child process whose wall clock
libfaketime moves ahead (scripts/moved_clock.sh), and the agent's own
settlement watchdog, with examples/merchant.toml, judges their sales at that
child's "now": each must be less than a day old, and none overdue.  A sale
backdated on purpose (dztest.settlement_e2e.backdated_sale) must be overdue,
so the check can fail.  (The age matters on its own: two years on, a stale
sale is past the watchdog's five-week expiry and no longer "overdue".)
CI's moved-clock phase runs the date-sensitive directories the same way.
"""

import glob
import json
import os
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOVED_CLOCK = os.path.join(REPO, "scripts", "moved_clock.sh")
DAY_MS = 86400000

CHILD = r"""
import importlib.util, json, os, sys, time
repo = sys.argv[1]
sys.path.insert(0, os.path.join(repo, "tests"))
from daozhang.agent.core.business_calendar import BusinessCalendar
from daozhang.agent.core.settlement.settlement_checks import txn_time_ms
from daozhang.agent.core.settlement.watchdog import SettlementWatchdog
from daozhang.profile import load_profile
from daozhang.timezone import timezone_for
from dztest.agent_daemon import PROFILE, sale
from dztest.settlement_e2e import backdated_sale
from dztest.sync import txn_payload

spec = importlib.util.spec_from_file_location("bench_journal_append",
                                              os.path.join(repo, "bench", "journal_append.py"))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

now = time.time_ns() // 1000000
profile = load_profile(PROFILE)
watchdog = SettlementWatchdog(profile, BusinessCalendar.from_profile(
    profile, timezone_for(profile["timezone"])))
watchdog.handle(("clock", True, now))
sales = [sale("F-agent"), txn_payload(1), bench.sale(1), backdated_sale("F-backdated", "000000000009")]
for seq, txn in enumerate(sales, 1):
    watchdog.handle(("transaction", dict(txn, seq=seq)))
overdue = sorted(obs["key"] for _, obs in watchdog.handle(("tick", now))
                 if obs["kind"] == "settlement_overdue" and obs["active"])
ages = {t["pos_txn_id"]: now - txn_time_ms(t) for t in sales}
print(json.dumps({"now_ms": now, "overdue": overdue, "ages_ms": ages}))
"""


def libfaketime_missing():
    return not (glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
                or os.path.exists("/usr/lib/faketime/libfaketime.so.1"))


@pytest.fixture(scope="module")
def moved_clock():
    if libfaketime_missing():
        why = "libfaketime is not installed (apt-get install libfaketime, or scripts/setup.sh)"
        if os.environ.get("CI"):
            pytest.fail(why + " (and CI is set: the moved-clock checks must run)")
        pytest.skip(why)
    return MOVED_CLOCK


@pytest.mark.parametrize("days", [3, 730])
def test_fixture_sales_are_not_overdue_with_the_clock_moved_ahead(moved_clock, days):
    before = time.time_ns() // 1000000
    child = subprocess.run([moved_clock, "+%dd" % days, sys.executable, "-c", CHILD, REPO],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-3000:]
    out = json.loads(child.stdout.strip().splitlines()[-1])
    # The child really ran `days` ahead (a day's slack covers any start-up time).
    assert abs(out["now_ms"] - (before + days * DAY_MS)) < DAY_MS, out["now_ms"]
    ages = out["ages_ms"]
    assert 9 * DAY_MS < ages.pop("F-backdated") < 11 * DAY_MS, out
    stale = {name: age for name, age in ages.items() if not 0 <= age < DAY_MS}
    assert stale == {}, "fixture sales not dated relative to now (ms before now): %r" % stale
    assert out["overdue"] == ["F-backdated"], (
        "a fixture's sale is overdue %d days from now (hard-coded date?): %r" % (days, out))
