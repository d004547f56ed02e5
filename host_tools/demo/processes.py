"""Child processes of `daozhang demo`: started in their own process group,
stopped with SIGTERM then SIGKILL, and checked to be gone.

Why process groups: the demo starts mosquitto, a backend worker and an agent
daemon (and short-lived `daozhang backend settle` runs).  Each gets a new
session (so a Ctrl-C in the terminal reaches only the demo, which then stops
them in order) and is stopped through its group, so nothing it may have
spawned survives it.  PR_SET_PDEATHSIG makes the kernel SIGKILL a child if
the demo itself dies without cleaning up (even by SIGKILL): start children
from the main thread, since the signal follows the thread that forked.

A child's stderr (the agent and the backend log one event per line) can be
handed line by line to a callback from a reader thread, and is also copied to
its log file, so the demo can show events as they happen without polling.
"""

import os
import signal
import subprocess
import threading
import time

from daozhang.agent.core.errors import LocalError

TERM_GRACE_S = 15.0     # the agent's own stop timeout is 20 s under load; idle it needs < 1 s
KILL_GRACE_S = 5.0


class ProcessFailed(LocalError):
    """A child the demo needs exited or never became ready."""


def _die_with_parent():
    """In the child before exec: SIGKILL it if the demo dies (Linux)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def group_alive(pgid):
    """True while any process of group `pgid` exists (zombies excluded once reaped)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ManagedProcess:
    """One child in its own process group, with its output in `log_path`.

    `on_line(text)`, if given, is called from a reader thread for every line
    the child writes (stdout and stderr merged); without it the output goes
    straight to the log file.
    """

    def __init__(self, name, argv, log_path, env=None, cwd=None, on_line=None):
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.on_line = on_line
        self.process = None
        self.pgid = None
        self._reader = None

    @property
    def pid(self):
        return None if self.process is None else self.process.pid

    def start(self):
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if self.on_line else log, stderr=subprocess.STDOUT,
                env=self.env, cwd=self.cwd, start_new_session=True, preexec_fn=_die_with_parent)
        except FileNotFoundError:
            log.close()
            raise ProcessFailed("%s: cannot run %s: not found" % (self.name, self.argv[0]))
        self.pgid = self.process.pid        # a new session: the child leads its group
        if self.on_line:
            self._reader = threading.Thread(target=self._read, args=(log,),
                                            name="demo-log-" + self.name, daemon=True)
            self._reader.start()
        else:
            log.close()
        return self

    def _read(self, log):
        try:
            for raw in self.process.stdout:
                log.write(raw)
                log.flush()
                try:
                    self.on_line(raw.decode("utf-8", "replace").rstrip("\n"))
                except Exception:       # a display bug must not stop the log copy
                    pass
        finally:
            log.close()

    def running(self):
        return self.process is not None and self.process.poll() is None

    def wait_exit(self, timeout):
        """The exit status, or None if still running after `timeout` seconds."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, term_grace=TERM_GRACE_S, kill_grace=KILL_GRACE_S):
        """SIGTERM the group, SIGKILL it if it lingers; return a one-line
        outcome.  Raises ProcessFailed if something of the group survives."""
        if self.process is None:
            return "%s: never started" % self.name
        outcome = "exited %s" % self.process.returncode if self.process.poll() is not None else None
        if outcome is None:
            self._signal(signal.SIGTERM)
            rc = self.wait_exit(term_grace)
            if rc is None:
                self._signal(signal.SIGKILL)
                rc = self.wait_exit(kill_grace)
                outcome = "killed after %.0f s" % term_grace
            else:
                outcome = "stopped (exit %s)" % rc
        # The leader is reaped; anything it left in its group gets SIGKILL.
        if group_alive(self.pgid):
            self._signal(signal.SIGKILL)
            deadline = time.monotonic() + kill_grace
            while group_alive(self.pgid) and time.monotonic() < deadline:
                threading.Event().wait(0.05)
        if self.process.poll() is None or group_alive(self.pgid):
            raise ProcessFailed("%s (pid %d) is still running after SIGKILL" % (self.name, self.pid))
        if self._reader is not None:
            self._reader.join(timeout=kill_grace)
        return "%s %s" % (self.name, outcome)

    def _signal(self, sig):
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            pass

    def log_tail(self, lines=12, chars=4000):
        """The last `lines` lines of the child's log (for error messages)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - chars))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip("\n").splitlines()[-lines:])


class ProcessSet:
    """Every child the demo started; `stop_all()` stops them last-started
    first and reports any that would not go."""

    def __init__(self):
        self.children = []

    def start(self, child):
        self.children.append(child)
        return child.start()

    def pids(self):
        return [c.pid for c in self.children if c.pid is not None]

    def stop_all(self):
        outcomes, failures = [], []
        for child in reversed(self.children):
            try:
                outcomes.append(child.stop())
            except ProcessFailed as exc:
                failures.append(str(exc))
        if failures:
            raise ProcessFailed("; ".join(failures))
        return outcomes


def run_once(argv, env=None, cwd=None, timeout=60):
    """A short command (provisioning, `backend settle`): (exit status, stdout,
    stderr), in its own process group, killed with its group on timeout."""
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env, cwd=cwd,
                               start_new_session=True, preexec_fn=_die_with_parent)
    try:
        out, err = process.communicate(timeout=timeout)
    except BaseException as exc:        # a timeout, or Ctrl-C while it runs: no orphan
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.communicate()
        if isinstance(exc, subprocess.TimeoutExpired):
            raise ProcessFailed("%s timed out after %s s" % (" ".join(argv[:4]), timeout))
        raise
    return process.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
