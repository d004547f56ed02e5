"""`daozhang backend run --workers N`: N worker processes on one shared subscription.

The supervisor starts N `daozhang backend run --config FILE --worker-index I`
processes.  They share the MQTT 5 subscription $share/<group>/... so the
broker deals each device message to one of them, and the store's row lock
per device keeps exactly-once whoever gets which batch.

A worker that dies (a crash, the OOM killer, SIGKILL) is started again
after RESTART_DELAY_S.  Nothing it held is lost: it PUBACKs a message only
after the message's records are committed, and the device resends from its
acked cursor whenever an ack does not come (SPEC 6.5), so a message lost
with the dead worker's session arrives again and is stored once.
SIGTERM/SIGINT to the supervisor stops every worker and then itself.

Metrics: workers write prometheus_client multiprocess files into a
directory the supervisor owns (backend/metrics.py); `--http` serves them
with the fleet view.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from daozhang.backend.service import EventLog

RESTART_DELAY_S = 0.5


class Supervisor:
    def __init__(self, config_path, workers, db=None, log_path=None, python=sys.executable, worker=None,
                 all_signatures=False):
        if workers < 1:
            raise ValueError("--workers: expected at least 1, got %d" % workers)
        self.config_path = config_path
        self.count = workers
        self.db = db
        self.worker = worker     # base worker number (--worker), else the config's
        self.all_signatures = all_signatures
        self.log = EventLog(log_path)
        self.python = python
        self.metrics_dir = tempfile.mkdtemp(prefix="dz-metrics-")
        self.procs = [None] * workers
        self.restarts = 0
        self.stop_event = threading.Event()

    def _argv(self, index):
        argv = [self.python, "-m", "daozhang", "backend", "run", "--config", self.config_path,
                "--worker-index", str(index)]
        if self.db:
            argv += ["--db", self.db]
        if self.worker is not None:
            argv += ["--worker", str(self.worker)]
        if self.all_signatures:
            argv.append("--all-signatures")
        return argv

    def _start(self, index):
        env = dict(os.environ)
        env["PROMETHEUS_MULTIPROC_DIR"] = self.metrics_dir
        proc = subprocess.Popen(self._argv(index), env=env, stdin=subprocess.DEVNULL)
        self.procs[index] = proc
        self.log("worker_started", index=index, pid=proc.pid)
        return proc

    def alive(self):
        return sum(1 for p in self.procs if p is not None and p.poll() is None)

    def run(self, install_signals=True):
        """Start the workers and keep them running until stop(); return 0."""
        if install_signals:
            signal.signal(signal.SIGTERM, lambda *a: self.stop_event.set())
            signal.signal(signal.SIGINT, lambda *a: self.stop_event.set())
        for i in range(self.count):
            self._start(i)
        try:
            while not self.stop_event.wait(0.2):
                for i, proc in enumerate(self.procs):
                    code = proc.poll()
                    if code is None:
                        continue
                    self.log("worker_died", level="warning", index=i, pid=proc.pid, code=code)
                    self._mark_dead(proc.pid)
                    if self.stop_event.wait(RESTART_DELAY_S):
                        break
                    self.restarts += 1
                    self._start(i)
        finally:
            self._stop_all()
        return 0

    def _mark_dead(self, pid):
        try:
            from daozhang.backend.metrics import mark_dead
            os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", self.metrics_dir)
            mark_dead(pid)
        except Exception:   # metrics are best effort; a worker restart is not
            pass

    def _stop_all(self):
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 30
        for proc in self.procs:
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.log("supervisor_stopped", restarts=self.restarts)

    def close(self):
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
