"""Daemon parts in-process: the clock guard, the watchdog rule, sd_notify, the log."""

import io
import os
import time

import pytest

from daozhang.agent import sd_notify
from daozhang.agent.config import load_agent_config
from daozhang.agent.core.clock_guard import ClockGuard
from daozhang.agent.core.errors import LocalError, StorageError
from daozhang.agent.core.journal import record
from daozhang.agent.assemble import BUILD_MS, Forward, assemble
from daozhang.agent.journal_scrub import ScrubPlugin
from daozhang.agent.service_port_plugin import ServicePortPlugin
from daozhang.agent.settlement_plugin import SettlementPlugin
from daozhang.agent.daemon import Daemon, EventLog
from daozhang.client import Client
from dztest.agent_daemon import NotifySocket, provision, read_records, sale
from dztest.micropython import run_micropython

H = 3600 * 1000


def test_clock_guard_events():
    g = ClockGuard(BUILD_MS, BUILD_MS + 10 * H)
    assert g.observe(BUILD_MS + 10 * H + 5) is None and g.trusted
    assert g.observe(BUILD_MS + 10 * H + 5 - 1000) is None          # a slew, not a step
    ev = g.observe(BUILD_MS + 9 * H)
    assert ev["event"] == "step_back" and ev["last_wall_ms"] == BUILD_MS + 10 * H + 5
    assert not g.trusted
    assert g.observe(BUILD_MS + 9 * H + 1000) is None                # still behind: not news
    assert g.observe(BUILD_MS + 11 * H)["event"] == "trusted" and g.trusted
    g2 = ClockGuard(BUILD_MS, 0)
    assert g2.observe(1000)["event"] == "before_build"
    assert g2.observe(BUILD_MS + 1)["event"] == "trusted"


def test_clock_guard_runs_under_micropython():
    code = ("from daozhang.agent.core.clock_guard import ClockGuard\n"
            "g = ClockGuard(100000, 500000)\n"
            "for t in (500001, 400000, 400500, 600000, 50):\n"
            "    ev = g.observe(t)\n"
            "    print(ev['event'] if ev else '-', g.trusted)\n")
    assert run_micropython(code).split() == ["-", "True", "step_back", "False", "-", "False",
                                             "trusted", "True", "before_build", "False"]


@pytest.fixture
def config(tmp_path):
    path, sock, pub = provision(tmp_path)
    return load_agent_config(path)


def test_clock_before_build_is_journaled_and_marked_untrusted(config):
    d = Daemon(config, log=EventLog(io.StringIO()), now_ms=lambda: BUILD_MS - 86400000)
    d.start()
    try:
        with Client(config["intake"]["socket"]) as conn:
            r = conn.submit(sale("C-1"))
        assert r["clock_trusted"] is False
    finally:
        d.stop()
    clock = [x for x in read_records(config["journal"]["path"], config["key"]) if x.type == record.TYPE_CLOCK]
    assert [c.payload["event"] for c in clock] == ["before_build"]


def test_clock_stepping_back_from_the_journal_is_journaled(config):
    d = Daemon(config, log=EventLog(io.StringIO()))
    d.start()
    d.stop()
    last = max(r.wall_ms for r in read_records(config["journal"]["path"], config["key"]))
    d = Daemon(config, log=EventLog(io.StringIO()), now_ms=lambda: last - 3600 * 1000)
    d.start()
    d.stop()
    clock = [x for x in read_records(config["journal"]["path"], config["key"]) if x.type == record.TYPE_CLOCK]
    assert [(c.payload["event"], c.payload["last_wall_ms"]) for c in clock] == [("step_back", last)]


class WedgedJournal:
    """A journal whose writer makes no progress and whose commits fail."""
    commits = 7
    device_id = "x"

    def set_cursors(self):
        raise StorageError("fdatasync: EIO")


def test_watchdog_not_fed_when_the_writer_makes_no_progress(config, monkeypatch):
    notify = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    try:
        d = Daemon(config, log=EventLog(io.StringIO()))
        d.journal = WedgedJournal()
        d._last_commits = 7
        d.clock = ClockGuard(0, 0)
        assert d.tick() is False
        # Progress (a real commit) earns a ping; the ping is the only datagram sent.
        d.journal.commits = 8
        assert d.tick() is True
        notify.wait_for("WATCHDOG=1", timeout=5)
        assert notify.messages == ["WATCHDOG=1"]
    finally:
        notify.close()


def test_sd_notify_without_systemd_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify.notify("READY=1") is False
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sd_notify.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert sd_notify.watchdog_interval() is None


def test_event_log_one_line_per_event_quoted():
    out = io.StringIO()
    EventLog(out)("txn_refused", code="pan_refused", detail='two words "q"\nnext')
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and 'detail="two words \\"q\\" next"' in lines[0]


def test_the_assembly_wires_intake_watchdog_and_alerts(config):
    """agent/assemble.py: the parts in data order, a committed sale reaches
    the watchdog through the intake's on_commit, and a part's alert reaches
    the alert machine (no [mqtt] here: no link; the board's service port)."""
    log = EventLog(io.StringIO())
    agent = assemble(config, log, lambda: int(time.time() * 1000))
    watch, port, scrub = agent.parts
    assert isinstance(watch, SettlementPlugin) and isinstance(port, ServicePortPlugin)
    assert isinstance(scrub, ScrubPlugin)
    assert port.alerts() == [] and port.health()["clock_trusted"] is True
    try:
        seq = agent.service.submit(sale("W-1"))["seq"]
        assert watch.release_floor() == seq                 # watched until it settles
        agent.alert("journal_full", "critical", {"detail": "from a part"})
        assert watch.machine.alerts[("journal_full", "device")]["state"] in ("pending", "firing")
    finally:
        watch.stop()
        agent.journal.close()


def test_the_daemon_starts_and_stops_the_assembled_parts(config):
    d = Daemon(config, log=EventLog(io.StringIO()))
    d.start()
    try:
        assert [type(p).__name__ for p in d.parts] == ["SettlementPlugin", "ServicePortPlugin",
                                                       "ScrubPlugin"]
        assert all(p.alive() for p in d.parts) and d.tick()
    finally:
        d.stop()
    assert not d.parts[0].alive()


def test_a_forward_calls_its_before_until_bound_and_binds_once():
    seen = []
    fwd = Forward("alert", before=lambda *a: seen.append(("log",) + a))
    fwd("journal_full", "critical", {})
    fwd.bind(lambda *a: seen.append(("machine",) + a))
    fwd("storage_error", "critical", {})
    assert seen == [("log", "journal_full", "critical", {}), ("machine", "storage_error", "critical", {})]
    with pytest.raises(LocalError):
        fwd.bind(print)
