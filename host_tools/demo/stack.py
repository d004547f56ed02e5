"""Everything the demo runs, set up the way an operator would, in one workdir:

    pki/        fleet CA, broker, backend and device TLS certificates
    broker/     mosquitto.conf (examples/mosquitto, port rewritten), acl, log
    backend/    backend.toml, backend.key/.pub (signs acks), backend.db (SQLite)
    device/     `daozhang device provision` output + mqtt.toml; intake.sock
    acquirer/   the settlement CSV files the acquirer sends

The operator's steps run as the real commands (`daozhang device provision`,
`daozhang backend device add`, `backend run`, `agent run`), so the demo shows
the product, not a mock of it.  Processes start in their own groups and stop
through `DemoStack.stop()` (processes.py).
"""

import os
import sys
import threading
import time
import uuid

from daozhang.agent.core.errors import LocalError
from daozhang.signing import generate_keypair
from daozhang.host_tools.pki import ca as pki
from daozhang.host_tools.demo.broker import DemoBroker, find_mosquitto
from daozhang.host_tools.demo.clock import agent_clock_env, align_to_agent_event
from daozhang.host_tools.demo.events import parse_logfmt
from daozhang.host_tools.demo.processes import ManagedProcess, ProcessFailed, ProcessSet, run_once

DEVICE_ID = "demo-pos-0001"
BACKEND_NAME = "backend"         # the ACL in examples/mosquitto grants this CN
MAX_SOCKET_PATH = 100            # sun_path is 108 bytes

# The demo's shop: examples/merchant.toml, but settled D0 within an hour, so
# on the demo clock (clock.py) a payment is due seconds after the sale.
def demo_locale():
    """The demo shop's language (its profile's `locale`: zh-CN for a CNY shop)."""
    import tomllib
    from daozhang.profile import validate_profile
    return validate_profile(tomllib.loads(DEMO_PROFILE), "<demo profile>")["locale"]


DEMO_PROFILE = """\
# The demo's merchant profile (examples/merchant.toml explains every key).
name = "老王面馆 Lao Wang Noodles (demo)"
merchant_id = "102290058120001"
terminal_id = "SH000001"
mcc = "5812"
region = "2900"
timezone = "Asia/Shanghai"
currency = "CNY"

[settlement]
mode = "D0"
cutoff = "23:00"
d0_within_minutes = 60

[fees]
tolerance = 1
d0_surcharge = 200

[fees.debit]
bp = 55
cap = 2000

[fees.credit]
bp = 60
"""

DEMO_BOARD = """\
# The demo's board: generic-linux with everything inside the demo workdir,
# a small journal and a 1 s heartbeat (the daemon's tick).
name = "demo"
description = "daozhang demo: a terminal in a temporary directory"

[paths]
state_dir = "{state}"

[journal]
file = "journal.dzj"
size = "4MiB"
segment_size = "64KiB"

[key]
file = "device.key"

[intake]
socket = "{socket}"
group = ""
mode = "0600"

[service_port]
device = "/dev/null"

[watchdog]
heartbeat_s = 1

[outputs]
status_file = "{state}/status.json"
console = false
"""


def daozhang_argv(*args):
    """The CLI as a child process, with this interpreter."""
    return [sys.executable, "-m", "daozhang"] + list(args)


class DemoStack:
    """Set up (`prepare`), start (`start`) and stop (`stop`) the demo's parts.

    `on_log(source, fields)` receives each event line the agent or the
    backend logs (parsed), from reader threads.
    """

    def __init__(self, workdir, clock, on_log=None, device_id=DEVICE_ID, on_command=None):
        self.workdir = os.path.abspath(workdir)
        self.clock = clock
        self.on_log = on_log or (lambda source, fields: None)
        self.on_command = on_command or (lambda text: None)
        self.device_id = device_id
        self.processes = ProcessSet()
        self.mosquitto = find_mosquitto()       # MosquittoMissing before anything is written
        self.dirs = dict((name, os.path.join(self.workdir, name))
                         for name in ("pki", "broker", "backend", "device", "acquirer"))
        self.socket_path = os.path.join(self.dirs["device"], "intake.sock")
        self.agent_config = os.path.join(self.dirs["device"], "agent.toml")
        self.backend_config = os.path.join(self.dirs["backend"], "backend.toml")
        self.profile_path = os.path.join(self.workdir, "merchant.toml")
        self.broker = None
        self.agent = None
        self.backend = None
        self._seen = {}                          # (source, event) -> threading.Event
        self._seen_lock = threading.Lock()
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")

    # -- set-up ------------------------------------------------------------------

    def prepare(self):
        if len(self.socket_path) > MAX_SOCKET_PATH:
            raise LocalError("--workdir %s is too long for a Unix socket path (%d > %d "
                             "characters): choose a shorter one"
                             % (self.workdir, len(self.socket_path), MAX_SOCKET_PATH))
        if os.path.isdir(self.workdir) and os.listdir(self.workdir):
            raise LocalError("--workdir %s is not empty: give a new or empty directory "
                             "(the demo provisions a fresh terminal there)" % self.workdir)
        for path in self.dirs.values():
            if path != self.dirs["device"]:          # provision creates it
                os.makedirs(path, mode=0o700, exist_ok=True)
        self._make_pki()
        with open(self.profile_path, "w", encoding="utf-8") as f:
            f.write(DEMO_PROFILE)
        self._make_backend()
        self._provision_device()

    def _make_pki(self):
        d = self.dirs["pki"]
        ca = pki.create_ca(os.path.join(d, "ca"), name="daozhang demo fleet CA")
        self.ca_cert = os.path.join(d, "ca", pki.CA_CERT)
        self.server = pki.issue_server(ca, [], os.path.join(d, "broker"))
        self.backend_tls = pki.issue_backend(ca, BACKEND_NAME, os.path.join(d, BACKEND_NAME))
        self.device_tls = pki.issue_device(ca, self.device_id, os.path.join(d, self.device_id))

    def _make_backend(self):
        d = self.dirs["backend"]
        generate_keypair(os.path.join(d, "backend"))
        self.backend_pub = os.path.join(d, "backend.pub")
        self.share_group = "backend-" + uuid.uuid4().hex[:12]
        # The broker port is known only once it runs: start() writes the file.

    def _write_backend_config(self):
        with open(self.backend_config, "w", encoding="utf-8") as f:
            f.write('[broker]\nhost = "%s"\nport = %d\nca = "%s"\ncert = "%s"\nkey = "%s"\n'
                    '[backend]\nkey = "backend.key"\ndb = "backend.db"\nshare_group = "%s"\n'
                    'gap_grace_s = 30\n'
                    % (self.broker.host, self.broker.backend_port, self.ca_cert,
                       self.backend_tls.cert, self.backend_tls.key, self.share_group))

    def _write_mqtt_config(self):
        with open(os.path.join(self.dirs["device"], "mqtt.toml"), "w", encoding="utf-8") as f:
            f.write('[mqtt]\nhost = "%s"\nport = %d\nca = "%s"\ncert = "%s"\nkey = "%s"\n'
                    'keepalive = 10\n[sync]\nack_timeout_s = 5\nidle_checkpoint_s = 1\n'
                    'backoff_base_ms = 200\nbackoff_cap_ms = 2000\n'
                    % (self.broker.host, self.broker.port, self.ca_cert, self.device_tls.cert,
                       self.device_tls.key))

    def _provision_device(self):
        board = os.path.join(self.workdir, "demo-board.toml")
        with open(board, "w", encoding="utf-8") as f:
            f.write(DEMO_BOARD.format(state=self.dirs["device"], socket=self.socket_path))
        self.run_cli("device", "provision", "--board", board, "--device-id", self.device_id,
                     "--profile", self.profile_path, "--backend-pubkey", self.backend_pub,
                     "--out", self.dirs["device"], "--json")

    def shown(self, args):
        """A command line as an operator would type it, paths relative to the workdir."""
        return "$ daozhang " + " ".join(os.path.relpath(a, self.workdir)
                                        if a.startswith(self.workdir + os.sep) else a for a in args)

    def run_cli(self, *args, timeout=60, show=True):
        if show:
            self.on_command(self.shown(args))
        rc, out, err = run_once(daozhang_argv(*args), env=self.env, cwd=self.workdir,
                                timeout=timeout)
        if rc != 0:
            raise ProcessFailed("`daozhang %s` failed (exit %d): %s"
                                % (" ".join(args[:2]), rc, (err or out).strip()[-600:]))
        return out

    # -- processes ---------------------------------------------------------------

    def _log_line(self, source):
        def handle(line):
            fields = parse_logfmt(line)
            if fields is None:
                return
            with self._seen_lock:
                seen = self._seen.get((source, fields["event"]))
            if source == "agent":
                align_to_agent_event(self.clock, fields)
            if seen is not None:
                seen.set()
            self.on_log(source, fields)
        return handle

    def _expect(self, source, event):
        with self._seen_lock:
            return self._seen.setdefault((source, event), threading.Event())

    def _wait_for(self, flag, child, what, timeout):
        deadline = time.monotonic() + timeout
        while not flag.wait(0.1):
            if not child.running():
                raise ProcessFailed("%s exited before %s; the end of its log:\n%s"
                                    % (child.name, what, child.log_tail()))
            if time.monotonic() > deadline:
                raise ProcessFailed("%s: no %s after %s s; the end of its log:\n%s"
                                    % (child.name, what, timeout, child.log_tail()))

    def start(self, timeout=30):
        """Broker, backend, agent; returns once the agent serves its socket
        and is connected to the broker, and the backend is subscribed."""
        self.broker = DemoBroker(self.dirs["broker"], self.ca_cert, self.server.cert,
                                 self.server.key, binary=self.mosquitto)
        self.broker.start(self.processes)
        self.on_command("$ mosquitto -c broker/mosquitto.conf    # 127.0.0.1:%d, TLS, client "
                        "certificates, ACL (examples/mosquitto)" % self.broker.port)
        self._write_backend_config()
        self.run_cli("backend", "device", "add", self.device_id, "--pubkey",
                     os.path.join(self.dirs["device"], "device.pub"),
                     "--config", self.backend_config)
        self._write_mqtt_config()
        subscribed = self._expect("backend", "subscribed")
        self.on_command(self.shown(("backend", "run", "--config", self.backend_config)))
        self.backend = ManagedProcess(
            "backend", daozhang_argv("backend", "run", "--config", self.backend_config),
            os.path.join(self.dirs["backend"], "backend.log"), env=self.env,
            cwd=self.dirs["backend"], on_line=self._log_line("backend"))
        self.processes.start(self.backend)
        self._wait_for(subscribed, self.backend, "subscription", timeout)
        ready, online = self._expect("agent", "agent_ready"), self._expect("agent", "sync_online")
        agent_env = dict(self.env, **agent_clock_env(self.clock, self.dirs["device"]))
        self.on_command(self.shown(("agent", "run", "--config", self.agent_config)))
        self.agent = ManagedProcess(
            "agent", daozhang_argv("agent", "run", "--config", self.agent_config),
            os.path.join(self.dirs["device"], "agent.log"), env=agent_env,
            cwd=self.dirs["device"], on_line=self._log_line("agent"))
        self.processes.start(self.agent)
        self._wait_for(ready, self.agent, "ready socket", timeout)
        self._wait_for(online, self.agent, "broker connection", timeout)
        return self

    def check_running(self):
        """Raise ProcessFailed if a part of the demo died."""
        for child in self.processes.children:
            if not child.running():
                raise ProcessFailed("%s (pid %d) exited unexpectedly (exit %s); the end of its "
                                    "log:\n%s" % (child.name, child.pid, child.process.returncode,
                                                  child.log_tail()))

    def terminal_display(self):
        """What the terminal's display shows now (its status file, written
        by the agent's outputs), or None before the first alert."""
        import json

        try:
            with open(os.path.join(self.dirs["device"], "status.json"), encoding="utf-8") as f:
                return json.load(f).get("display")
        except (OSError, ValueError, AttributeError):
            return None

    def pids(self):
        return self.processes.pids()

    def stop(self):
        """Agent, backend, broker: each SIGTERM, then SIGKILL; verified gone."""
        return self.processes.stop_all()
