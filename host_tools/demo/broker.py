"""The demo's own mosquitto: the shipped TLS + ACL config on a free local port.

The config is examples/mosquitto/mosquitto.conf with only the paths, the
ports (terminals' and backend's listener), the persistence directory and the log destination rewritten (the same
rule tests/dztest/broker.py follows), so the demo runs the configuration we
ship: TLS, client certificates from the fleet CA, CN as username, the ACL.

The binary is looked up on PATH, then in /usr/sbin (Debian installs it
there, outside a normal user's PATH); DAOZHANG_MOSQUITTO overrides both
(a path to the binary, e.g. to test the "not installed" message).
"""

import os
import shutil
import socket

from daozhang.agent.core.errors import LocalError
from daozhang.host_tools.demo.broker_ready import NotReady, wait_broker_ready
from daozhang.host_tools.demo.processes import ManagedProcess, ProcessFailed

MOSQUITTO_ENV = "DAOZHANG_MOSQUITTO"
FALLBACK_DIRS = ("/usr/sbin", "/usr/local/sbin")
INSTALL_HINT = "sudo apt-get install mosquitto"
HOST = "127.0.0.1"

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(_REPO, "examples", "mosquitto")


class MosquittoMissing(LocalError):
    """No mosquitto binary: exit 2 with the install command."""


def find_mosquitto(environ=None):
    """The path of the mosquitto binary, or raise MosquittoMissing."""
    environ = os.environ if environ is None else environ
    override = environ.get(MOSQUITTO_ENV)
    if override:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            return override
        raise MosquittoMissing("mosquitto not found at %s=%s: install it with `%s` "
                               "or point %s at the binary" % (MOSQUITTO_ENV, override,
                                                              INSTALL_HINT, MOSQUITTO_ENV))
    path = shutil.which("mosquitto", path=environ.get("PATH", os.defpath))
    if path:
        return path
    for directory in FALLBACK_DIRS:
        candidate = os.path.join(directory, "mosquitto")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise MosquittoMissing("mosquitto is not installed (not on PATH, not in %s): install it "
                           "with `%s` (or run `make demo`, which does)"
                           % (", ".join(FALLBACK_DIRS), INSTALL_HINT))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def render_config(template, settings, drop=()):
    """Rewrite `key value` lines of a mosquitto.conf.  A key in `settings`
    with a text value gets it on every line with that key (the TLS paths of
    both listeners); with a list, its n-th line gets the n-th value (one
    `listener` line per listener).  A missing key is appended; keys in `drop`
    are removed.  Comments and other lines stay."""
    out, seen = [], {}
    for line in template.splitlines():
        words = line.split(None, 1)
        key = words[0] if words and not words[0].startswith("#") else None
        if key in drop:
            continue
        if key in settings:
            value, n = settings[key], seen.get(key, 0)
            seen[key] = n + 1
            if isinstance(value, (list, tuple)):
                if n >= len(value):
                    raise ValueError("mosquitto.conf has more %r lines than the %d values given"
                                     % (key, len(value)))
                value = value[n]
            out.append("%s %s" % (key, value))
            continue
        out.append(line)
    for key, value in settings.items():
        if key not in seen:
            for one in value if isinstance(value, (list, tuple)) else (value,):
                out.append("%s %s" % (key, one))
    return "\n".join(out) + "\n"


def _read_example(name):
    path = os.path.join(EXAMPLES, name)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise LocalError("cannot read %s (%s): the demo runs from a source checkout "
                         "(pip install -e .)" % (path, exc.strerror)) from None


class DemoBroker:
    """mosquitto with the shipped TLS + ACL config, in `directory`."""

    def __init__(self, directory, ca_cert, server_cert, server_key, binary=None):
        self.binary = binary or find_mosquitto()
        self.directory = directory
        self.ca_cert = ca_cert
        self.server_cert = server_cert
        self.server_key = server_key
        self.host = HOST
        self.port = None          # the terminals' listener
        self.backend_port = None  # the backend workers' listener
        self.child = None

    def _write_config(self):
        os.makedirs(os.path.join(self.directory, "data"), exist_ok=True)
        acl_path = os.path.join(self.directory, "acl")
        with open(acl_path, "w", encoding="utf-8") as f:
            f.write(_read_example("acl"))
        settings = {"listener": ["%d %s" % (self.port, HOST),
                                 "%d %s" % (self.backend_port, HOST)],
                    "cafile": self.ca_cert, "certfile": self.server_cert,
                    "crlfile": os.path.join(os.path.dirname(self.ca_cert), "crl.pem"),
                    "keyfile": self.server_key, "acl_file": acl_path,
                    "persistence_location": os.path.join(self.directory, "data") + "/",
                    "log_dest": "stderr"}
        if os.geteuid() == 0:
            # As root mosquitto switches to user "mosquitto", who cannot read
            # our 0600 keys: stay the user who runs the demo.
            settings["user"] = "root"
        config_path = os.path.join(self.directory, "mosquitto.conf")
        with open(config_path, "w", encoding="utf-8") as f:
            f.write(render_config(_read_example("mosquitto.conf"), settings))
        return config_path

    def start(self, processes, timeout=15):
        """Start under `processes` (a ProcessSet); return once it accepts TCP.
        Another process may take the free port between probe and bind: then
        try another port, up to 3 times."""
        for attempt in range(3):
            self.port, self.backend_port = free_port(), free_port()
            config = self._write_config()
            self.child = ManagedProcess("mosquitto", [self.binary, "-c", config],
                                        os.path.join(self.directory, "mosquitto.log"))
            processes.start(self.child)
            try:
                self._wait_ready(timeout)
                return self
            except ProcessFailed:
                if "Address already in use" in self.child.log_tail() and attempt < 2:
                    continue
                raise

    def _wait_ready(self, timeout):
        try:
            for port in (self.port, self.backend_port):
                wait_broker_ready(self.host, port, self.child.wait_exit, self._log, timeout)
        except NotReady as e:
            raise ProcessFailed("%s; its log:\n%s" % (e, self.child.log_tail()))

    def _log(self):
        try:
            with open(self.child.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""
