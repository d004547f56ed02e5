"""The agent daemon: `daozhang agent run --config DIR/agent.toml` (SPEC 5: the POS
intake it serves).

The parts (journal, intake, settlement watchdog, sync link, service port,
scrub) and every callback between them are built in one place,
agent/assemble.py.  This file runs them and talks to systemd:

- start: assemble the agent from the config (recovery, a boot record, a
  clock record if the wall clock is untrusted, the indexes rebuilt), start
  its parts in order, listen, then READY=1;
- run: every `tick` seconds, check the clock, and prove the journal writer
  alive: if no commit happened since the last tick, a heartbeat commit (a
  checkpoint covering no records, SPEC 3.6).  WATCHDOG=1 is sent only after
  such proof and every part's `alive()` agrees, never by the timer alone:
  a wedged writer (stuck fsync, dead disk) stops the pings and systemd
  restarts us;
- SIGTERM/SIGINT: close the listening socket, stop reading requests, answer
  those in flight, stop the parts in reverse order, close the journal
  (every answer given was committed), STOPPING=1, exit 0.  SIGKILL needs
  nothing: the journal recovers.

A journal that refuses to open (damage) gives an agent that refuses sales
and raises `journal_damaged` (assemble_damaged, agent/journal_damaged.py).
"""

import contextlib
import os
import re
import signal
import sys
import threading
import time

from daozhang.agent import sd_notify
from daozhang.agent.assemble import assemble, observe_clock
from daozhang.agent.config import load_agent_config
from daozhang.agent.core.errors import JournalFull, StorageError
from daozhang.agent.intake import IntakeServer
from daozhang.agent.journal_damaged import show_damage
from daozhang.agent.malloc_arenas import cap_malloc_arenas
from daozhang.agent.sim_clock import from_environment

STOP_TIMEOUT_S = 20.0          # the unit's TimeoutStopSec is 30
_NEEDS_QUOTES = re.compile('[ ="\n]')


class EventLog:
    """One event per line on stderr: `ts=... level=info event=name key=value ...`.

    Callers pass codes, sequence numbers and ids, never a submitted value
    that failed validation: a card number must not reach journald.
    """

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._held = threading.local()      # .lines: this thread's lines while it holds them

    def __call__(self, event, level="info", **fields):
        parts = ["ts=%.3f" % time.time(), "level=" + level, "event=" + event]
        for key in sorted(fields):
            value = fields[key]
            # A line per committed sale: the common values (numbers, plain
            # ids) take the quick way, anything else is quoted.
            text = str(value) if value is not None else "-"
            if not text or _NEEDS_QUOTES.search(text):
                text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'
            parts.append(key + "=" + text)
        line = " ".join(parts) + "\n"
        held = getattr(self._held, "lines", None)
        if held is not None:
            held.append(line)
            return
        self._write(line)

    def _write(self, text):
        with self._lock:
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):
                pass

    @contextlib.contextmanager
    def hold(self):
        """The lines this thread logs inside go out at its end, in one write:
        a commit's line per sale costs one system call and one wake-up of
        journald, not one each.  Other threads' lines are not held."""
        if getattr(self._held, "lines", None) is not None:
            yield                   # already held further out
            return
        self._held.lines = []
        try:
            yield
        finally:
            lines, self._held.lines = self._held.lines, None
            if lines:
                self._write("".join(lines))


class Daemon:
    def __init__(self, config, log=None, now_ms=None):
        self.config = config
        self.log = log or EventLog()
        self.now_ms = now_ms or (lambda: time.time_ns() // 1000000)
        self.journal = None
        self.service = None
        self.server = None
        self.clock = None
        self.alert = None                     # the assembled agent's alert(kind, severity, detail)
        self.parts = []                       # its threads, in start order
        self.damaged = None                   # JournalDamaged when the journal refused to open
        self._stop = threading.Event()
        self._last_commits = -1

    # -- start -------------------------------------------------------------------

    def start(self):
        agent = assemble(self.config, self.log, self.now_ms)
        self.journal, self.service, self.clock = agent.journal, agent.service, agent.clock
        self.alert, self.parts, self.damaged = agent.alert, agent.parts, agent.damaged
        for part in self.parts:
            part.start()
        if self.damaged is not None:
            # After the degraded link started: it carries the alert to the backend.
            show_damage(self.damaged, self.log, self.alert, self.config.get("outputs"))
        intake = self.config["intake"]
        self.server = IntakeServer(self.service, intake["socket"], intake["mode"], intake["group"],
                                   log=self.log)
        self.server.start()
        if self.damaged is not None:
            sd_notify.notify("READY=1\nSTATUS=journal damaged: refusing sales")
            self.log("agent_ready", device=self.config["device_id"], socket=intake["socket"],
                     journal="damaged")
            return
        self._last_commits = self.journal.commits
        sd_notify.notify("READY=1\nSTATUS=serving on %s" % intake["socket"])
        self.log("agent_ready", device=self.config["device_id"], socket=intake["socket"])

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
            self.alert("journal_full", "critical", {"detail": "heartbeat refused: journal full"})
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
        observe_clock(self.clock, self.journal, self.now_ms(), self.log)
        alive = self.writer_alive()
        for part in self.parts:
            alive = alive and bool(part.alive())
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
        for part in reversed(self.parts):
            try:
                part.stop()
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
    cap_malloc_arenas()                 # before any thread starts (agent/malloc_arenas.py)
    config = load_agent_config(path)
    # Tests and the demo only: DAOZHANG_SIM_CLOCK names a simulated clock file
    # (agent/sim_clock.py); unset, the system clock.
    daemon = Daemon(config, now_ms=from_environment())
    try:
        return daemon.run()
    except BaseException:
        if daemon.server is not None:
            daemon.server.stop_accepting()
        raise
    finally:
        os.environ.pop("NOTIFY_SOCKET", None)

