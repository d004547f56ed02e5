"""`daozhang demo`: run the whole system for a while and show what happens.

The sequence: set up a workdir (stack.py), start mosquitto, the backend
and the agent, then a POS (pos.py) and an acquirer (acquirer.py);
every event (theirs, and the agent's and backend's log events) goes through
one queue to the tally and the view (view.py), on the main thread.
The duration ending, Ctrl-C or SIGTERM stops the POS and the acquirer, gives
the last sales a moment to sync, stops every process (SIGTERM, then
SIGKILL; each verified gone) and prints the summary.
"""

import json
import queue
import shutil
import signal
import tempfile
import time

from daozhang.profile import load_profile
from daozhang.i18n import texts_for
from daozhang.host_tools.demo.acquirer import Acquirer, backend_settle
from daozhang.host_tools.demo.clock import DEFAULT_SPEED, DemoClock
from daozhang.host_tools.demo.events import DemoEvent, Tally, translate
from daozhang.host_tools.demo.pos import Pos
from daozhang.host_tools.demo.processes import ProcessFailed, group_alive
from daozhang.host_tools.demo.stack import DemoStack, demo_locale
from daozhang.host_tools.demo.view import LiveView, PlainView, summary_lines

SYNC_DRAIN_S = 5.0          # after the POS stops: time for the last sales to be acked
HEALTH_EVERY_S = 1.0


class _Stop(Exception):
    """SIGTERM: end the demo like Ctrl-C does."""


class Demo:
    def __init__(self, duration=60, workdir=None, rate=2.0, speed=DEFAULT_SPEED, seed=2026,
                 out=None, live_console=None):
        self.duration = duration
        self.rate = rate
        self.seed = seed
        self.clock = DemoClock(speed)
        self.events = queue.Queue()
        self.tally = Tally()
        self.keep_workdir = workdir is not None
        self.workdir = workdir or tempfile.mkdtemp(prefix="dz-demo-")
        self.out = out
        self.live_console = live_console
        self.started = time.monotonic()
        self.stack = None
        self.pos = None
        self.acquirer = None
        self.reason = None
        self.stopped = []
        self.pids = []
        self.display = None

    # -- events ------------------------------------------------------------------

    def emit(self, event):
        """Queue an event, stamped now (shown from the main thread)."""
        self.events.put((self.elapsed(), event))

    def _on_log(self, source, fields):
        event = translate(source, fields)
        if event is not None:
            self.emit(event)

    def _pump(self, view, timeout):
        """Show queued events for up to `timeout` seconds (at least one wait)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                stamp, event = self.events.get(timeout=max(0.0, left))
            except queue.Empty:
                view.refresh(self.elapsed())
                return
            self.tally.add(event)
            view.show(event, stamp)
            if time.monotonic() >= deadline:
                return

    def elapsed(self):
        return time.monotonic() - self.started

    # -- run ---------------------------------------------------------------------

    def run(self):
        """Run until the duration ends, Ctrl-C or SIGTERM; return the summary."""
        try:
            self.stack = DemoStack(self.workdir, self.clock, on_log=self._on_log,
                                   on_command=lambda text: self.emit(DemoEvent("setup", text, {})))
        except BaseException:
            self._remove_workdir()
            raise
        view = (LiveView(self.live_console, self.tally, legend="clock " + self.clock.describe(),
                         texts=texts_for(demo_locale()))
                if self.live_console is not None else PlainView(self.out))
        previous = signal.signal(signal.SIGTERM, self._sigterm)
        failure = None
        try:
            with view:
                try:
                    self._start(view)
                    self._loop(view)
                except (KeyboardInterrupt, _Stop) as exc:
                    self.reason = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else "SIGTERM"
                except ProcessFailed as exc:
                    self.reason, failure = "failure", exc
                finally:
                    # Let the cleanup finish: a second Ctrl-C or SIGTERM must
                    # not leave processes behind (each stop is bounded anyway).
                    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)
                    try:
                        self._shutdown(view)
                    finally:
                        signal.signal(signal.SIGINT, old_int)
        finally:
            signal.signal(signal.SIGTERM, previous)
        summary = self.summary()
        if failure is not None:
            failure.summary = summary
            raise failure
        return summary

    def _sigterm(self, signum, frame):
        raise _Stop()

    def _start(self, view):
        self.emit(DemoEvent("setup", "workdir %s; clock %s" % (self.workdir, self.clock.describe()),
                            {}))
        self._pump(view, 0)
        self.stack.prepare()
        self.emit(DemoEvent("setup", "fleet CA, TLS certificates, backend key, terminal %s "
                            "provisioned (merchant.toml: D0 within 60 min)" % self.stack.device_id, {}))
        self._pump(view, 0)
        self.stack.start()
        self.pids = self.stack.pids()
        self.emit(DemoEvent("setup", "ready: broker, backend (SQLite) and agent running (pids %s); "
                            "the POS sells %g per second" % (" ".join(map(str, self.pids)),
                                                             self.rate), {}))
        profile = load_profile(self.stack.profile_path)
        self.acquirer = Acquirer(self.stack.dirs["acquirer"], self.clock, profile, self.emit,
                                 synced=lambda seq: seq < self.tally.acked_to,
                                 settle=backend_settle(self.stack.run_cli, self.stack.backend_config))
        self.pos = Pos(self.stack.socket_path, self.clock, profile, self.rate, self.emit,
                       self.acquirer.sale_made, seed=self.seed)
        self.started_selling = time.monotonic()
        self.pos.start()
        self.acquirer.start()

    def _loop(self, view):
        end = None if not self.duration else self.started_selling + self.duration
        next_health = time.monotonic() + HEALTH_EVERY_S
        while end is None or time.monotonic() < end:
            wait = HEALTH_EVERY_S if end is None else min(HEALTH_EVERY_S, end - time.monotonic())
            self._pump(view, max(0.0, wait))
            if time.monotonic() >= next_health:
                self.stack.check_running()
                self._watch_display()
                next_health = time.monotonic() + HEALTH_EVERY_S
        self.reason = "duration"

    def _watch_display(self):
        line = self.stack.terminal_display()
        if line is not None and line != self.display:
            self.display = line
            self.emit(DemoEvent("display", "terminal shows: " + line, {"line": line}))

    def _shutdown(self, view):
        for part in (self.pos, self.acquirer):
            if part is not None:
                part.stop()
        for part in (self.pos, self.acquirer):
            if part is not None and part.is_alive():
                part.join(timeout=30)
        if self.stack is not None and self.stack.agent is not None and self.reason == "duration":
            self._drain_sync(view)
        if self.stack is not None:
            self.emit(DemoEvent("setup", "stopping agent, backend, mosquitto", {}))
            self._pump(view, 0)
            self.stopped = self.stack.stop()
            self.pids = self.stack.pids()
            left = [pid for pid in self.pids if group_alive(pid)]
            if left:
                raise ProcessFailed("processes still running after stop: %s" % left)
        self._pump(view, 0.2)       # the last log lines of the stopped processes
        self._remove_workdir()

    def _drain_sync(self, view):
        """Give the last sales a moment to reach the backend."""
        deadline = time.monotonic() + SYNC_DRAIN_S
        while time.monotonic() < deadline:
            seqs = self.tally.txn_seqs
            if not seqs or self.tally.acked_to > max(seqs):
                return
            self._pump(view, 0.2)

    def _remove_workdir(self):
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def summary(self):
        s = self.tally.summary()
        s.update({"seconds": round(self.elapsed(), 1), "clock": self.clock.describe(),
                  "reason": self.reason, "stopped": self.stopped, "pids": self.pids,
                  "settlement_files": self.acquirer.files if self.acquirer else 0,
                  "never_settled": self.acquirer.never if self.acquirer else 0,
                  "workdir": self.workdir if self.keep_workdir else None})
        return s


def print_summary(summary, human_out, json_out=None):
    human_out.write("\n".join(summary_lines(summary)) + "\n")
    human_out.flush()
    if json_out is not None:
        json_out.write(json.dumps(summary, sort_keys=True) + "\n")
        json_out.flush()
