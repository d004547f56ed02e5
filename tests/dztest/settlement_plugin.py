"""The parts agent/assemble.py gives a SettlementPlugin, on a real journal
file, as a test can change them (tests/settlement_e2e, tests/settlement)."""

import os

from daozhang.profile import load_profile
from daozhang.agent.settlement_alerts import alerts_file_path
from daozhang.agent.settlement_plugin import SettlementPlugin
from dztest.agent_daemon import PROFILE
from dztest.settlement_e2e import now_ms


class FakeClock:
    trusted = True


class FakeService:
    def __init__(self, profile):
        self.profile = profile


class FakeDaemon:
    """The journal, profile, clock, log and intake listeners a test drives."""

    def __init__(self, tmp, journal):
        self.journal = journal
        self.config = {"device_id": "pos-plug-1", "path": os.path.join(str(tmp), "agent.toml"),
                       "outputs": {"console": False}}
        self.service = FakeService(load_profile(PROFILE))
        self.clock = FakeClock()
        self.now = now_ms()
        self.now_ms = lambda: self.now
        self.transaction_listeners = []
        self.events = []
        self.log = lambda event, level="info", **kw: self.events.append((event, kw))


def settlement_plugin(daemon):
    """A SettlementPlugin on the FakeDaemon's parts, as agent/assemble.py
    builds it; the daemon's transaction_listeners stand for the intake."""
    plugin = SettlementPlugin(daemon.journal, daemon.service.profile, daemon.config["device_id"],
                              alerts_file_path(daemon.config["path"]), daemon.log,
                              lambda: daemon.now_ms(), lambda: daemon.clock.trusted,
                              outputs=daemon.config.get("outputs"))
    daemon.transaction_listeners.append(plugin.on_transaction)
    return plugin
