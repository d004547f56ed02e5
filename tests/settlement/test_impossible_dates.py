"""A journal that already holds a sale dated 9999-12-31 or 0000-01-01
(written before the intake refused such times, SPEC 5.4): the watchdog flags
it (alert `sale_unjudgeable`) and skips it, the agent's settlement plugin
rebuilds its index from that journal without a crash, and reconcile lists it
as refused instead of dying (issue 12)."""

import json
import subprocess
import sys

import pytest

from daozhang.agent.core.business_calendar import BusinessCalendar
from daozhang.agent.core.journal import record
from daozhang.agent.core.settlement.watchdog import SettlementWatchdog
from daozhang.profile import load_profile
from daozhang.timezone import timezone_for
from dztest import reconcile as sc
from dztest.agent_daemon import PROFILE
from dztest.settlement_e2e import backdated_sale, now_ms
from dztest.settlement_plugin import FakeDaemon, settlement_plugin
from dztest.sync import make_journal

IMPOSSIBLE = ("9999-12-31T23:59:59+14:00", "0000-01-01T00:00:00+14:00",
              "0001-01-01T00:00:00-14:00", "1969-12-31T23:59:59Z")


def impossible_sale(name, when, rrn="500000000001"):
    t = dict(backdated_sale(name, rrn))
    t["time"] = when    # as an older agent journaled it, past today's validation
    return t


@pytest.mark.parametrize("when", IMPOSSIBLE)
def test_the_watchdog_flags_and_skips_the_sale(when):
    profile = load_profile(PROFILE)
    w = SettlementWatchdog(profile, BusinessCalendar.from_profile(
        profile, timezone_for(profile["timezone"])))
    now = now_ms()
    out = w.handle(("transaction", dict(impossible_sale("BAD", when), seq=1), now))
    assert [(tag, o["kind"], o["key"], o["active"], o["detail"]["field"]) for tag, o in out] == [
        ("alert", "sale_unjudgeable", "BAD", True, "time")]
    assert w.watched_deadline("BAD") is None and w.index.get("BAD") is None
    # The sale after it is watched as usual; ticks and the release cursor work.
    w.handle(("transaction", dict(backdated_sale("OK", "500000000002"), seq=2), now))
    assert [o["key"] for _, o in w.tick(now)] == ["OK"]
    assert w.release_cursor() == 2


def test_the_agent_rebuilds_from_such_a_journal_and_alerts(tmp_path):
    path, journal = make_journal(tmp_path, device="pos-plug-1")
    try:
        for i, when in enumerate(IMPOSSIBLE):
            journal.append(record.TYPE_TRANSACTION, impossible_sale("BAD%d" % i, when))
        journal.append(record.TYPE_TRANSACTION, backdated_sale("OK", "500000000009"))
        daemon = FakeDaemon(tmp_path, journal)
        plugin = settlement_plugin(daemon)     # rebuilds its index from the whole journal
        plugin.start()
        try:
            plugin.tick()
            states = {(a["kind"], a["key"]): a["state"] for a in plugin.current_alerts()}
            assert states[("settlement_overdue", "OK")] == "firing"
            # Replayed sales are not re-flagged (outputs of a rebuild are dropped);
            # a sale committed live is.
            seq = journal.append(record.TYPE_TRANSACTION,
                                 impossible_sale("LIVE", IMPOSSIBLE[0], "500000000010")).seq
            plugin.on_transaction(seq, impossible_sale("LIVE", IMPOSSIBLE[0], "500000000010"))
            plugin.drain()
            alert = plugin.machine.alerts[("sale_unjudgeable", "LIVE")]
            assert alert["state"] == "firing" and alert["detail"]["field"] == "time"
            assert "1 sale the watchdog cannot judge" in plugin.status_summary()["alerts"]["display"]
        finally:
            plugin.stop()
        skipped = [kw for event, kw in daemon.events if event == "settlement_replay_skipped"]
        assert skipped == []
    finally:
        journal.close()


def test_reconcile_lists_the_sale_as_refused(tmp_path):
    good = sc.txn("S01", sc.MONDAY % "10:01:00", n=1)
    bad = [dict(sc.txn("X%d" % i, sc.MONDAY % "10:02:00", n=2 + i), time=when)
           for i, when in enumerate(IMPOSSIBLE)]
    journal, pub, _ = sc.write_journal(str(tmp_path), [good] + bad)
    csv = tmp_path / "s.csv"
    csv.write_text(sc.csv_text([sc.row_for(good, "OK1")]), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "daozhang", "reconcile", "--journal", journal,
                           "--pubkey", pub, "--settlement", str(csv), "--profile", sc.PROFILE,
                           "--as-of", sc.AS_OF, "--json", "--out", str(tmp_path / "r.html")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    s = json.loads(proc.stdout)
    reasons = {x["pos_txn_id"]: x["reason"] for x in s["journal"]["excluded"]}
    assert sorted(reasons) == ["X0", "X1", "X2", "X3"]
    assert all("outside the range the settlement calendar can judge" in r
               for r in reasons.values())
    assert s["counts"]["ok"] == 1
