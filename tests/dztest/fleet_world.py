"""A fleet on the test's own broker: the backend supervisor as a real process,
`daozhang sim` in the test process.

    world = FleetWorld(tmp_path, tls_broker, db_url)
    world.start_backend(workers=2, http="127.0.0.1:0")
    report = world.sim(terminals=2000, rate=6, duration=20)
    world.kill_worker(0)                  # SIGKILL; the supervisor restarts it
    world.db_counts()                     # records, distinct (device, seq), findings
"""

import os
import re
import signal
import subprocess
import sys

from dztest.sync_world import BackendProcess, wait_for


class FleetWorld:
    def __init__(self, tmp, broker, db):
        from daozhang.signing import generate_keypair
        from daozhang.fleet.sim import raise_fd_limit

        # mosquitto (a child) inherits the limit: one descriptor per terminal.
        raise_fd_limit(16384)
        self.tmp = str(tmp)
        self.broker = broker
        self.db = db
        self.backend_key = os.path.join(self.tmp, "backend")
        generate_keypair(self.backend_key)
        self.log_path = os.path.join(self.tmp, "backend.log")
        self.config_path = self._config()
        # Its log() and stderr() read the supervisor's event log and stderr.
        self.files = BackendProcess(self.config_path, self.log_path)
        self.proc = None

    def _config(self):
        s = self.broker.settings("backend")
        path = os.path.join(self.tmp, "backend.toml")
        with open(path, "w") as f:
            f.write('[broker]\nhost = "%s"\nport = %d\nca = "%s"\ncert = "%s"\nkey = "%s"\n'
                    '[backend]\nkey = "%s"\ndb = "%s"\nshare_group = "fleet-7d1c"\n'
                    'gap_grace_s = 120\nlog = "%s"\n'
                    % (s["host"], s["port"], s["ca"], s["cert"], s["key"],
                       self.backend_key + ".key", self.db, self.log_path))
        return path

    def start_backend(self, workers=2, http=None, silent_after=300, extra=()):
        argv = [sys.executable, "-m", "daozhang", "backend", "run", "--config", self.config_path,
                "--workers", str(workers), "--silent-after", str(silent_after)] + list(extra)
        if http:
            argv += ["--http", http]
        err = open(self.log_path + ".stderr", "ab")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))
        err.close()
        wait_for(lambda: self._subscribed() >= workers, 180, "%d workers subscribed" % workers)
        if http:
            wait_for(lambda: self.http_address() is not None, 60, "fleet view serving")
        return self

    def log(self):
        return self.files.log()

    def stderr(self):
        return self.files.stderr()

    def _subscribed(self):
        if self.proc.poll() is not None:
            raise AssertionError("backend exited: %s" % self.stderr()[-3000:])
        return self.log().count("event=subscribed")

    def worker_pids(self):
        """index -> pid of the newest start of each worker."""
        pids = {}
        for index, pid in re.findall(r"event=worker_started index=(\d+) pid=(\d+)", self.log()):
            pids[int(index)] = int(pid)
        return pids

    def http_address(self):
        found = re.findall(r"event=http_ready url=(\S+)", self.log())
        return found[-1] if found else None

    def kill_worker(self, index):
        pid = self.worker_pids()[index]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: self.worker_pids()[index] != pid, 30, "worker %d restarted" % index)
        return pid

    def sim_settings(self, terminals, rate, duration, backlog=0, drain_timeout=90, register=True,
                     **more):
        from daozhang.fleet.sim import SimSettings
        pki = self.broker.pki
        ca_dir = os.path.dirname(pki.ca_cert)
        return SimSettings(terminals, rate, backlog, duration, host=self.broker.host,
                           port=self.broker.port, ca=pki.ca_cert, ca_dir=ca_dir,
                           cache=os.path.join(os.path.dirname(ca_dir), "fleet-cache"),
                           backend_pub=self.backend_key + ".pub",
                           register_db=self.db if register else None, drain_timeout=drain_timeout,
                           **more)

    def db_counts(self):
        from daozhang.backend.store import open_store
        with open_store(self.db) as store:
            with store.db.read() as tx:
                records = tx.one("SELECT count(*) FROM records")[0]
                distinct = tx.one("SELECT count(*) FROM (SELECT DISTINCT device_id, seq FROM records) d")[0]
                findings = tx.all("SELECT device_id, kind, detail FROM findings")
                acked = tx.one("SELECT coalesce(sum(last_seq + 1), 0) FROM acks")[0]
        return {"records": records, "distinct": distinct, "findings": findings, "acked_to": acked}

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
