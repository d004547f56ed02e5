"""A real sync world for integration tests: mosquitto (TLS + ACL, from
dztest.broker), backend worker processes, and agent daemons configured with
mqtt.toml, all as real processes.

    world = SyncWorld(tmp_path, broker, db_url_or_path)
    world.start_backend("b1")
    agent = world.start_agent("pos-1", ack_timeout_s=2)
    with world.pos(agent) as pos: pos.submit(sale("T-1"))
    world.wait_for(lambda: world.store().stats()["receipts"] == 1)

Every wait is on a condition with a timeout (checked every 50 ms by an
Event wait, never a bare sleep).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from dztest.agent_daemon import AgentProcess, provision

FAST_SYNC = {"ack_timeout_s": 2, "backoff_base_ms": 100, "backoff_cap_ms": 1000,
             "status_interval_s": 0.2}


def wait_for(predicate, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s"
                                 % (timeout, what() if callable(what) else what))
        tick.wait(0.05)


class BackendProcess:
    def __init__(self, config_path, log_path):
        self.config_path = config_path
        self.log_path = log_path
        self.proc = None

    def start(self, timeout=30):
        with open(self.log_path, "a") as f:
            f.write("--- start\n")
        err = open(self.log_path + ".stderr", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "daozhang", "backend", "run",
                                      "--config", self.config_path],
                                     stdout=subprocess.DEVNULL, stderr=err,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))
        err.close()
        mark = self.log().count("--- start")
        wait_for(lambda: self._started_ok(mark), timeout, "backend subscribed")
        return self

    def _started_ok(self, mark):
        if self.proc.poll() is not None:
            raise AssertionError("backend exited: %s" % self.stderr()[-3000:])
        text = self.log()
        last = text.split("--- start")[-1]
        return "event=subscribed" in last

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stderr(self):
        try:
            with open(self.log_path + ".stderr") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def acks_sent(self):
        return [int(m) for m in re.findall(r"event=ack_sent .*?to=(\d+)", self.log())]

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


# boards/generic-linux.toml's journal (issue 10: the tests ran 64 KiB segments
# while the boards ship 1 MiB, and a reader bug past 256 KiB went unseen).
# Tests that must wrap the ring fast pass small sizes themselves.
SHIPPED_JOURNAL = "64MiB"
SHIPPED_SEGMENT = "1MiB"


def _worker_number(name):
    """b1 -> 1, b2 -> 2: each named worker keeps its own MQTT session
    (SPEC 6.10.4) across restarts."""
    digits = "".join(c for c in name if c.isdigit())
    return int(digits) if digits else 1 + sum(name.encode()) % 9000


class SyncWorld:
    def __init__(self, tmp, broker, db):
        from daozhang.signing import generate_keypair
        self.tmp = str(tmp)
        self.broker = broker
        self.db = db
        self.backend_key = os.path.join(self.tmp, "backend")
        if not os.path.exists(self.backend_key + ".key"):
            generate_keypair(self.backend_key)
        self.backends = []
        self.agents = []
        self._stores = []

    # -- backend ----------------------------------------------------------------

    def backend_config(self, name, gap_grace_s=30, **backend):
        s = self.broker.settings("backend")
        path = os.path.join(self.tmp, name + ".toml")
        with open(path, "w") as f:
            f.write('[broker]\nhost = "%s"\nport = %d\nca = "%s"\ncert = "%s"\nkey = "%s"\n'
                    '[backend]\nkey = "%s"\ndb = "%s"\nshare_group = "dz"\ngap_grace_s = %s\n'
                    'log = "%s"\nworker = %d\n'
                    % (s["host"], s["port"], s["ca"], s["cert"], s["key"],
                       self.backend_key + ".key", self.db, gap_grace_s,
                       os.path.join(self.tmp, name + ".log"), _worker_number(name)))
            for key, value in backend.items():      # more [backend] keys
                f.write("%s = %s\n" % (key, value))
        return path

    def start_backend(self, name="b1", gap_grace_s=30, **backend):
        proc = BackendProcess(self.backend_config(name, gap_grace_s, **backend),
                              os.path.join(self.tmp, name + ".log"))
        self.backends.append(proc)
        return proc.start()

    def store(self):
        from daozhang.backend.store import open_store
        store = open_store(self.db)
        self._stores.append(store)
        return store

    def cli(self, *args):
        from daozhang.cli.main import cli
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    # -- agents -------------------------------------------------------------------

    def provision_agent(self, device_id, journal_size=SHIPPED_JOURNAL, segment_size=SHIPPED_SEGMENT,
                        **sync):
        cert = self.broker.pki.add_device(device_id)
        base = os.path.join(self.tmp, device_id)
        os.makedirs(base, exist_ok=True)
        for ext in (".key", ".pub"):     # provision() trusts <base>/backend.pub
            shutil.copyfile(self.backend_key + ext, os.path.join(base, "backend" + ext))
        config, sock, pub = provision(base, journal_size=journal_size, segment_size=segment_size,
                                      device_id=device_id)
        s = self.broker.settings(device_id)
        settings = dict(FAST_SYNC)
        settings.update(sync)
        lines = ['[mqtt]', 'host = "%s"' % s["host"], "port = %d" % s["port"],
                 'ca = "%s"' % s["ca"], 'cert = "%s"' % cert.cert, 'key = "%s"' % cert.key,
                 "keepalive = 10", "[sync]"]
        for key, value in settings.items():
            lines.append("%s = %s" % (key, value))
        with open(os.path.join(os.path.dirname(config), "mqtt.toml"), "w") as f:
            f.write("\n".join(lines) + "\n")
        self.cli("backend", "device", "add", device_id, "--pubkey", pub, "--db", self.db)
        return config, sock, pub

    def start_agent(self, config, env=None):
        agent = AgentProcess(config, config + ".log", env=env)
        self.agents.append(agent)
        return agent.start()

    def status(self, config):
        import json
        path = os.path.join(os.path.dirname(config), "sync-status.json")
        try:
            with open(path) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return {}

    def close(self):
        for agent in self.agents:
            agent.close()
        for proc in self.backends:
            proc.kill()
        for store in self._stores:
            try:
                store.close()
            except Exception:
                pass


@pytest.fixture
def sqlite_world(tmp_path, tls_broker):
    """A SyncWorld on the test's TLS broker, backend store in SQLite; closed
    (agents and workers killed) afterwards.  Import it into a conftest.py."""
    world = SyncWorld(tmp_path, tls_broker, str(tmp_path / "backend.db"))
    yield world
    world.close()
