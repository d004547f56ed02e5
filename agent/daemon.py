"""The agent daemon: `daozhang agent run --config DIR/agent.toml` (intake.md 6).

Wires the journal, the intake socket and (later) the sync loop and the
settlement watchdog, and talks to systemd:

- start: load the config and the merchant profile, open the journal
  (recovery + a boot record), journal a clock record if the wall clock is
  untrusted, rebuild the idempotency index, listen, then READY=1;
- run: every `tick` seconds, check the clock, and prove the journal writer
  alive: if no commit happened since the last tick, a heartbeat commit (a
  checkpoint covering no records, SPEC 3.6).  WATCHDOG=1 is sent only after
  such proof and every plugin's `alive()` agrees, never by the timer alone:
  a wedged writer (stuck fsync, dead disk) stops the pings and systemd
  restarts us;
- SIGTERM/SIGINT: close the listening socket, stop reading requests, answer
  those in flight, close the journal (every answer given was committed),
  STOPPING=1, exit 0.  SIGKILL needs nothing: the journal recovers.

Hooks for other parts (named, so they plug in without editing this file):
`PLUGINS` (factories `f(daemon) -> plugin` with start(), stop(), alive();
the MQTT sync loop and the settlement watchdog register here),
`DAMAGED_PLUGINS` (the same, on a journal that refuses to open: the sync
loop's degraded link that still sends status and alerts),
`daemon.alert_hook(kind, severity, detail)` (the alert engine replaces it),
and `daemon.transaction_listeners` (called with (seq, payload) after each
committed transaction).
"""

import os
import signal
import sys
import threading
import time

from daozhang import __version__
from daozhang.agent import sd_notify
from daozhang.agent.config import load_agent_config
from daozhang.agent.core import record
from daozhang.agent.core.clock_guard import ClockGuard
from daozhang.agent.core.errors import JournalDamaged, JournalFull, StorageError
from daozhang.agent.intake import IntakeServer
from daozhang.agent.intake_service import IntakeService
from daozhang.agent.journal_file import JournalFile
from daozhang.agent.profile import load_profile
from daozhang.agent.key_rotation import finish_interrupted_rotation
from daozhang.signing import FileSigner

# The software's build date (UTC midnight): a wall clock before it is wrong.
BUILD_DATE = "2026-11-25"
BUILD_MS = 1795564800000
STOP_TIMEOUT_S = 20.0          # the unit's TimeoutStopSec is 30
PLUGINS = []                   # factories: f(daemon) -> object with start(), stop(), alive()
DAMAGED_PLUGINS = []           # the same, started instead when the journal refuses to open


class EventLog:
    """One event per line on stderr: `ts=... level=info event=name key=value ...`.

    Callers pass codes, sequence numbers and ids, never a submitted value
    that failed validation: a card number must not reach journald.
    """

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()

    def __call__(self, event, level="info", **fields):
        parts = ["ts=%.3f" % time.time(), "level=" + level, "event=" + event]
        for key in sorted(fields):
            value = fields[key]
            text = str(value) if value is not None else "-"
            if not text or any(c in text for c in ' ="\n'):
                text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'
            parts.append("%s=%s" % (key, text))
        line = " ".join(parts) + "\n"
        with self._lock:
            try:
                self.stream.write(line)
                self.stream.flush()
            except (OSError, ValueError):
                pass


class Daemon:
    def __init__(self, config, log=None, now_ms=None):
        self.config = config
        self.log = log or EventLog()
        self.now_ms = now_ms or (lambda: time.time_ns() // 1000000)
        self.journal = None
        self.service = None
        self.server = None
        self.clock = None
        self.plugins = []
        self.transaction_listeners = []
        self.alert_hook = self._log_alert     # replaced by the alert engine's adapter
        self._stop = threading.Event()
        self._last_commits = -1
        self.damaged = None                   # JournalDamaged when the journal refused to open

    # -- hooks -------------------------------------------------------------------

    def _log_alert(self, kind, severity, detail):
        self.log("alert", level=severity, kind=kind, **{k: v for k, v in detail.items()})

    def _on_alert(self, kind, severity, detail):
        self.alert_hook(kind, severity, detail)

    # -- start -------------------------------------------------------------------

    def start(self):
        cfg = self.config
        profile = load_profile(cfg["profile"])
        try:
            self.journal = self._open_journal(cfg)      # JournalFull handled
        except JournalDamaged as exc:
            return self._start_refusing(exc)
        stats = self.journal.stats()
        self.log("journal_open", path=cfg["journal"]["path"], next_seq=stats["next_seq"],
                 fill="%.3f" % stats["fill"], outage=stats["outage"], version=__version__)
        self.service = IntakeService(self.journal, profile=profile, log=self.log,
                                     alert_hook=self._on_alert,
                                     clock_trusted=lambda: self.clock.trusted,
                                     now_ms=lambda: self.now_ms())
        self.service.on_commit = self._transaction_committed
        own_boot = getattr(self.journal.clock, "boot_id", None)
        self.clock = ClockGuard(BUILD_MS, self.service.last_wall_before(own_boot))
        self._check_clock()
        for factory in PLUGINS:
            self.plugins.append(factory(self))
        for plugin in self.plugins:
            plugin.start()
        intake = cfg["intake"]
        self.server = IntakeServer(self.service, intake["socket"], intake["mode"], intake["group"],
                                   log=self.log)
        self.server.start()
        self._last_commits = self.journal.commits
        sd_notify.notify("READY=1\nSTATUS=serving on %s" % intake["socket"])
        self.log("agent_ready", device=cfg["device_id"], socket=intake["socket"])

    def _start_refusing(self, error):
        """The journal refuses to open (damage): alarm and refuse sales, no restart loop
        (agent/journal_damaged.py)."""
        from daozhang.agent.journal_damaged import DamagedJournalService, show_damage
        self.damaged = error
        # Before the alert is raised: the sync plugin's degraded link carries it
        # to the backend (agent/damaged_link.py).
        for factory in DAMAGED_PLUGINS:
            self.plugins.append(factory(self))
        for plugin in self.plugins:
            plugin.start()
        show_damage(self, error)
        self.service = DamagedJournalService(self.config["device_id"], error)
        intake = self.config["intake"]
        self.server = IntakeServer(self.service, intake["socket"], intake["mode"], intake["group"], log=self.log)
        self.server.start()
        sd_notify.notify("READY=1\nSTATUS=journal damaged: refusing sales")
        self.log("agent_ready", device=self.config["device_id"], socket=intake["socket"], journal="damaged")

    def _open_journal(self, cfg):
        path = cfg["journal"]["path"]
        # A key rotation cut short by a crash is finished or undone before
        # anything is signed: the journal must never be signed by a key it
        # has not announced (agent/key_rotation.py).
        outcome = finish_interrupted_rotation(cfg["key"], path)
        if outcome is not None:
            self.log("key_rotation_" + outcome, level="warning")
        try:
            return JournalFile.open(path, FileSigner(cfg["key"]))
        except JournalFull as exc:
            # Even the boot record does not fit.  Serve anyway, without it: the
            # POS gets a clear `journal_full` instead of a dead socket, and the
            # sync loop can still release records.  A restart loop would not help.
            self.log("journal_full", level="critical", detail=str(exc), at="open")
            self._on_alert("journal_full", "critical", {"detail": "at start: " + str(exc)})
            return JournalFile.open(path, FileSigner(cfg["key"]), boot=False)

    def _transaction_committed(self, seq, payload):
        for listener in self.transaction_listeners:
            try:
                listener(seq, payload)
            except Exception as exc:
                self.log("listener_error", level="error", error=type(exc).__name__)

    def _check_clock(self):
        event = self.clock.observe(self.now_ms())
        if event is None:
            return
        level = "info" if event["event"] == "trusted" else "warning"
        self.log("clock_" + event["event"], level=level, wall_ms=event["wall_ms"],
                 last_wall_ms=event["last_wall_ms"])
        try:
            self.journal.append(record.TYPE_CLOCK, event)
        except (JournalFull, StorageError) as exc:
            self.log("clock_record_failed", level="error", error=str(exc))

    # -- run ---------------------------------------------------------------------

    def tick_interval(self):
        wd = sd_notify.watchdog_interval()
        heartbeat = self.config["watchdog"]["heartbeat_s"]
        return min(heartbeat, wd / 3) if wd else heartbeat

    def writer_alive(self):
        """True once the journal writer has committed since the last call.

        Real traffic counts; when idle, a heartbeat commit (a checkpoint
        covering no records) goes through the whole writer path: queue,
        sign, pwrite, fdatasync.
        """
        commits = self.journal.commits
        if commits != self._last_commits:
            self._last_commits = commits
            return True
        try:
            self.journal.set_cursors()
        except JournalFull:
            # The writer answered without writing: it is alive, the disk is
            # full of unreleased records.  Alert; restarting would not help.
            self._on_alert("journal_full", "critical", {"detail": "heartbeat refused: journal full"})
            return True
        except StorageError as exc:
            self.log("heartbeat_failed", level="error", error=str(exc))
            return False
        self._last_commits = self.journal.commits
        return True

    def tick(self):
        if self.damaged is not None:        # nothing to prove alive but the refusing socket
            sd_notify.notify("WATCHDOG=1")
            return True
        self._check_clock()
        alive = self.writer_alive()
        for plugin in self.plugins:
            alive = alive and bool(plugin.alive())
        if alive:
            sd_notify.notify("WATCHDOG=1")
        return alive

    def request_stop(self, *_):
        self._stop.set()

    def run(self):
        """Serve until SIGTERM/SIGINT; return the exit status (0)."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self.start()
        interval = self.tick_interval()
        while not self._stop.wait(interval):
            self.tick()
        return self.stop()

    def stop(self):
        t0 = time.monotonic()
        sd_notify.notify("STOPPING=1\nSTATUS=stopping: finishing transactions in flight")
        self.log("agent_stopping")
        if self.server is not None:
            self.server.stop_accepting()
            left = self.server.drain(STOP_TIMEOUT_S)
            if left:
                self.log("stop_connections_left", level="warning", count=left)
        if self.service is not None:
            self.service.accepting = False
        for plugin in reversed(self.plugins):
            try:
                plugin.stop()
            except Exception as exc:
                self.log("plugin_stop_error", level="error", error=type(exc).__name__)
        committed = self.service.committed if self.service else 0
        if self.service is not None:
            try:    # saves the next start re-indexing the last second of sales
                self.service.flush()
            except Exception as exc:
                self.log("index_flush_error", level="warning", error=type(exc).__name__)
        if self.journal is not None:
            self.journal.close()
        self.log("agent_stopped", committed=committed, seconds="%.3f" % (time.monotonic() - t0))
        return 0


def run_from_config(path):
    config = load_agent_config(path)
    # Tests and the demo only: DAOZHANG_SIM_CLOCK names a simulated clock file
    # (agent/sim_clock.py); unset, the system clock.
    from daozhang.agent.sim_clock import from_environment
    daemon = Daemon(config, now_ms=from_environment())
    try:
        return daemon.run()
    except BaseException:
        if daemon.server is not None:
            daemon.server.stop_accepting()
        raise
    finally:
        os.environ.pop("NOTIFY_SOCKET", None)


# -- MQTT sync hook (docs/SPEC.md §6): journal class + PLUGINS entry ----
from daozhang.agent import sync_plugin as _sync_plugin  # noqa: E402

_sync_plugin.install(sys.modules[__name__])

# -- Settlement watchdog, alerts and the USB service port (settlement-acks.md) --
from daozhang.agent import settlement_plugin as _settlement_plugin  # noqa: E402
from daozhang.agent import service_port_plugin as _service_port_plugin  # noqa: E402

_settlement_plugin.install(sys.modules[__name__])
_service_port_plugin.install(sys.modules[__name__])

# -- Journal scrub (SPEC 3.9): re-verify the retained journal in the background --
from daozhang.agent import journal_scrub as _journal_scrub  # noqa: E402

_journal_scrub.install(sys.modules[__name__])
