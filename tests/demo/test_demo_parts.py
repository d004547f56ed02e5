"""The demo's parts without processes: the simulated acquirer injects exactly
the discrepancy it claims (judged by the real settlement checks), the log
parser never raises, the tally counts, the broker launcher finds or refuses
mosquitto, and the live view renders."""

import io
import random
import tomllib

import pytest
from hypothesis import given, settings, strategies as st

from daozhang.agent.core.business_calendar import BusinessCalendar
from daozhang.agent.core.settlement.settlement_checks import SettlementLedger
from daozhang.profile import validate_profile
from daozhang.timezone import ZoneInfoTimezone
from daozhang.host_tools.demo import broker as demo_broker
from daozhang.host_tools.demo.acquirer import FATES, fate_of, plan_settlement, settlement_csv
from daozhang.host_tools.demo.clock import DemoClock, align_to_agent_event
from daozhang.host_tools.demo.events import DemoEvent, Tally, parse_logfmt, translate
from daozhang.host_tools.demo.pos import make_sale
from daozhang.host_tools.demo.stack import DEMO_PROFILE
from daozhang.settlement_files import parse_settlement_text

PROFILE = validate_profile(tomllib.loads(DEMO_PROFILE), "demo merchant.toml")
CALENDAR = BusinessCalendar.from_profile(PROFILE, ZoneInfoTimezone(PROFILE["timezone"]))
# What the terminal's checks must find for each fate the acquirer picks.
EXPECTED_CHECKS = {"ok": [], "late": ["late"], "short": ["short"], "over_fee": ["over_fee"],
                   "mcc_jump": ["mcc_jump"], "region_jump": ["region_jump"]}


# -- the acquirer: planned fate == the checks' verdict ------------------------------

@settings(max_examples=150, deadline=None)
@given(number=st.integers(1, 400), seed=st.integers(0, 2 ** 32),
       sale_ms=st.integers(1767225600000, 1893456000000))      # 2026 .. 2030
def test_acquirer_rows_get_exactly_the_planned_verdict(number, seed, sale_ms):
    """Invariant: a row the acquirer plans with fate F, written as CSV in the
    default layout and read back, is judged by the settlement checks as
    exactly F (nothing more), and 'never' yields no row."""
    rng = random.Random(seed)
    txn = make_sale(number, sale_ms, rng, PROFILE, "123456")
    txn_ms = sale_ms // 1000 * 1000           # the sale's time is stamped to the second
    due, row, fate = plan_settlement(number, txn, txn_ms, PROFILE, CALENDAR, rng)
    assert fate == fate_of(number)
    if fate == "never":
        assert row is None
        return
    parsed = parse_settlement_text(settlement_csv([row]))
    assert parsed.bad_rows == []
    assert len(parsed.rows) == 1
    ledger = SettlementLedger(PROFILE, CALENDAR)
    ledger.add_transaction(dict(txn, seq=7))
    result = ledger.add_settlement(parsed.rows[0])
    assert result["pos_txn_id"] == txn["pos_txn_id"]
    assert result["checks"] == EXPECTED_CHECKS[fate], (fate, result)


def test_every_fate_appears_within_the_first_twenty_sales():
    fates = set(fate_of(n) for n in range(1, 21))
    assert fates == set(EXPECTED_CHECKS) | {"never"}
    assert fate_of(3) == "late"               # an overdue alert fires and resolves early
    assert sum(1 for f in FATES if f == "ok") > len(FATES) // 2


def test_pos_sales_carry_only_masked_cards():
    rng = random.Random(1)
    for n in range(1, 200):
        txn = make_sale(n, 1795656000000, rng, PROFILE, "000001")
        card = txn["card"]
        assert len(card) == 16 and card[6:12] == "******" and card[:6].isdigit()


# -- log lines ----------------------------------------------------------------------

def test_logfmt_reads_the_agent_event_log():
    line = ('ts=1795656339.205 level=warning event=alert action=firing key=DEMO-1-00003 '
            'kind=settlement_overdue detail="a \\"quoted\\" text" seq=41')
    fields = parse_logfmt(line)
    assert fields["event"] == "alert" and fields["action"] == "firing"
    assert fields["detail"] == 'a "quoted" text' and fields["seq"] == "41"
    assert parse_logfmt("Traceback (most recent call last):") is None
    assert parse_logfmt("") is None


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_logfmt_never_raises(line):
    """Invariant: any line parses to a dict with `event`, or None; nothing else."""
    out = parse_logfmt(line)
    assert out is None or (isinstance(out, dict) and "event" in out)
    if out is not None:
        translate("agent", out)
        translate("backend", out)


def test_translate_alerts_and_acks():
    fired = translate("agent", {"event": "alert", "action": "firing", "kind": "mcc_jump",
                                "key": "T-1"})
    assert fired.kind == "alert" and fired.data["action"] == "firing"
    assert translate("agent", {"event": "alert", "action": "pending", "kind": "mcc_jump"}) is None
    acked = translate("agent", {"event": "sync_acked", "to": "15", "backlog": "0"})
    assert acked.kind == "sync" and acked.data["to"] == 15
    assert translate("agent", {"event": "txn_committed"}) is None


def test_tally_counts_what_the_summary_reports():
    t = Tally()
    for seq in (2, 4, 6):
        t.add(DemoEvent("txn", "", {"seq": seq, "amount": 100}))
    t.add(DemoEvent("sync", "", {"to": 5}))
    t.add(DemoEvent("settle", "", {"rows": 2, "matched": 2, "fates": {"ok": 1, "late": 1}}))
    t.add(DemoEvent("check", "", {"checks": ["late"]}))
    t.add(DemoEvent("alert", "", {"action": "firing", "kind": "settlement_overdue", "key": "a"}))
    t.add(DemoEvent("alert", "", {"action": "resolved", "kind": "settlement_overdue", "key": "a"}))
    s = t.summary()
    assert (s["transactions"], s["synced"], s["settled"]) == (3, 2, 2)
    assert (s["alerts_fired"], s["alerts_resolved"], s["alerts_firing"]) == (1, 1, 0)
    assert s["discrepancies"]["late"] == 1 and s["injected"] == {"late": 1, "ok": 1}


# -- the clock ---------------------------------------------------------------------

def test_demo_clock_aligns_to_the_agents_first_reading():
    wall = [1000000]
    clock = DemoClock(speed=600, wall_ms=lambda: wall[0])
    align_to_agent_event(clock, {"event": "journal_open", "ts": "2000.000"})
    wall[0] = 2001000                         # one real second after the agent's reading
    assert clock.now_ms() == 2000000 + 600 * 1000
    align_to_agent_event(clock, {"event": "sync_acked", "ts": "9.0"})   # not an anchor
    assert clock.now_ms() == 2000000 + 600 * 1000


# -- mosquitto lookup ----------------------------------------------------------------

def test_missing_mosquitto_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_broker, "FALLBACK_DIRS", (str(tmp_path),))
    with pytest.raises(demo_broker.MosquittoMissing) as info:
        demo_broker.find_mosquitto({"PATH": str(tmp_path)})
    assert "sudo apt-get install mosquitto" in str(info.value)
    assert info.value.exit_code == 2


def test_mosquitto_override_must_be_an_executable(tmp_path):
    binary = tmp_path / "mosquitto"
    binary.write_text("#!/bin/sh\n")
    with pytest.raises(demo_broker.MosquittoMissing):
        demo_broker.find_mosquitto({"DAOZHANG_MOSQUITTO": str(binary), "PATH": ""})
    binary.chmod(0o755)
    assert demo_broker.find_mosquitto({"DAOZHANG_MOSQUITTO": str(binary), "PATH": ""}) == str(binary)


def test_render_config_rewrites_only_the_given_keys():
    template = "# c\nlistener 8883\ncafile /etc/x\nrequire_certificate true\n"
    out = demo_broker.render_config(template, {"listener": "1234 127.0.0.1", "log_dest": "stderr"})
    assert out.splitlines() == ["# c", "listener 1234 127.0.0.1", "cafile /etc/x",
                                "require_certificate true", "log_dest stderr"]


# -- the live view -------------------------------------------------------------------

def test_live_view_shows_counts_events_and_the_terminal_display():
    from rich.console import Console
    from daozhang.host_tools.demo.view import LiveView

    console = Console(file=io.StringIO(), width=120, record=True, force_terminal=True)
    tally = Tally()
    view = LiveView(console, tally, legend="clock 1 s = 10 min simulated")
    for event in (DemoEvent("txn", "sale 00001 ¥12.00", {"seq": 2, "amount": 1200}),
                  DemoEvent("display", "terminal shows: 1 payment overdue, ¥12.00",
                            {"line": "1 payment overdue, ¥12.00"})):
        tally.add(event)
        view.show(event, 1.0)
    console.print(view._render())
    text = console.export_text()
    assert "sales 1" in text and "sale 00001" in text
    assert "1 payment overdue, ¥12.00" in text and "Ctrl-C" in text


def test_live_view_in_the_demo_shops_language():
    from rich.console import Console
    from daozhang.host_tools.demo.stack import demo_locale
    from daozhang.host_tools.demo.view import LiveView
    from daozhang.i18n import texts_for

    assert demo_locale() == "zh-CN"
    console = Console(file=io.StringIO(), width=120, record=True, force_terminal=True)
    view = LiveView(console, Tally(), legend="clock", texts=texts_for("zh-CN"))
    console.print(view._render())
    text = console.export_text()
    assert "已同步" in text and "终端屏幕" in text and "所有款项正常" in text
    assert "synced" not in text and "what happens" not in text
