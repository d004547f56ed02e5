"""A real mosquitto for tests: TLS + ACL from examples/mosquitto/, or plain.

    from dztest.broker import Broker, fleet_pki, tls_broker, plain_broker  # fixtures

    def test_x(tls_broker):
        a = tls_broker.connect("dev-a")            # MqttProbe: MQTT 5, TLS, client cert
        a.publish("daozhang/v1/dev-a/receipts", b"x")
        tls_broker.kill(); tls_broker.start()      # SIGKILL, then the same port again
        settings = tls_broker.settings("dev-a")    # host, port, ca, cert, key for an agent
        tls_broker.settings("backend")             # ... the backend's port (backend_port)

The broker runs from its own temp directory (config, ACL, persistence, log)
on two free 127.0.0.1 ports, as shipped: `port` for terminals (client id :=
certificate CN) and `backend_port` for backend workers; `settings`,
`connect`, `probe` and `try_connect` pick the one for the identity; `start()` returns once a TCP connect succeeds, and
raises with the broker's log if it exits first.  The config is the example
file with only paths, port and persistence directory rewritten, so the tests
exercise the configuration we ship.  Missing mosquitto: skip, or fail when
the CI environment variable is set.  mosquitto is SIGKILLed if the thread
that started it dies (PR_SET_PDEATHSIG), so start brokers from the main
thread (fixtures do) and none outlives a crashed test run.
"""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import uuid

import pytest

from dztest.mqtt_probe import BrokerFailed, ConnectOutcome, MqttProbe  # noqa: F401 (re-exported)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(REPO, "examples", "mosquitto")
HOST = "127.0.0.1"

# Directives the fixture owns; everything else comes from the example file.
_TLS_ONLY = ("cafile", "crlfile", "certfile", "keyfile", "require_certificate",
             "use_identity_as_username", "use_username_as_clientid", "acl_file", "tls_version")


def mosquitto_path():
    """The mosquitto binary; skip the test without one (fail under CI)."""
    path = shutil.which("mosquitto") or ("/usr/sbin/mosquitto"
                                         if os.access("/usr/sbin/mosquitto", os.X_OK) else None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed, and CI is set: the broker tests must run")
        pytest.skip("mosquitto is not installed")
    return path


def _die_with_parent():
    """In the child before exec: SIGKILL mosquitto if the test process dies
    (even by SIGKILL), so no broker outlives a crashed test run (Linux)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


# The product's broker launcher (used by `daozhang demo`) renders the same
# shipped config; the tests use its helpers rather than a copy.
from daozhang.host_tools.demo.broker_ready import NotReady, wait_broker_ready  # noqa: E402
from daozhang.host_tools.demo.broker import free_port, render_config  # noqa: E402


class Broker:
    """One mosquitto process; restartable on the same port; `close()` always
    kills it and removes its directory (use as a context manager)."""

    def __init__(self, pki=None, tls=True, acl=True, persistence=True, directory=None,
                 extra=None, port=None, backend_port=None):
        self.binary = mosquitto_path()
        if tls and pki is None:
            raise ValueError("a TLS broker needs a PKI (host_tools.pki.bundle.make_test_pki)")
        self.pki = pki
        self.tls = tls
        self.acl = acl and tls  # the ACL keys on certificate CNs
        self.persistence = persistence
        self._own_dir = directory is None
        self.directory = directory or tempfile.mkdtemp(prefix="dz-mosquitto-")
        self.port = port or free_port()                  # terminals' listener
        self.backend_port = backend_port or free_port()  # backend workers' listener
        self._fixed_port = port is not None
        self.host = HOST
        self.extra = dict(extra or {})
        self.process = None
        self.log_path = os.path.join(self.directory, "mosquitto.log")
        self.config_path = os.path.join(self.directory, "mosquitto.conf")
        self.acl_path = os.path.join(self.directory, "acl")
        self.data_dir = os.path.join(self.directory, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self._probes = []

    # -- config -----------------------------------------------------------------

    def _write_config(self):
        with open(os.path.join(EXAMPLES, "mosquitto.conf")) as f:
            template = f.read()
        settings = {"listener": ["%d %s" % (self.port, HOST), "%d %s" % (self.backend_port, HOST)],
                    "persistence": "true" if self.persistence else "false",
                    "persistence_location": self.data_dir + "/",
                    "log_dest": "stderr"}
        drop = ()
        if os.geteuid() == 0:
            # As root mosquitto switches to user "mosquitto", who cannot read
            # our 0600 keys; stay as the test's user instead.
            settings["user"] = "root"
        if self.tls:
            settings.update({"cafile": self.pki.ca_cert, "certfile": self.pki.server.cert,
                             "keyfile": self.pki.server.key,
                             "crlfile": os.path.join(os.path.dirname(self.pki.ca_cert), "crl.pem")})
            if self.acl:
                shutil.copyfile(os.path.join(EXAMPLES, "acl"), self.acl_path)
                settings["acl_file"] = self.acl_path
            else:
                drop = ("acl_file",)
        else:
            settings["allow_anonymous"] = "true"
            drop = _TLS_ONLY
        settings.update(self.extra)
        with open(self.config_path, "w") as f:
            f.write(render_config(template, settings, drop))

    # -- process ----------------------------------------------------------------

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def start(self, timeout=15):
        """Start mosquitto and return once it accepts TCP connections."""
        if self.running:
            raise BrokerFailed("mosquitto already running (pid %d)" % self.process.pid)
        for attempt in range(3):
            self._write_config()
            self._log_offset = len(self.log())
            log = open(self.log_path, "ab")
            try:
                self.process = subprocess.Popen([self.binary, "-c", self.config_path],
                                                stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True,
                                                preexec_fn=_die_with_parent)
            finally:
                log.close()
            try:
                self.wait_ready(timeout)
                return self
            except BrokerFailed:
                # Someone took our free port between probe and bind: try
                # another, unless the caller (or a restart) needs this one.
                if "Address already in use" in self.log() and not self._fixed_port \
                        and attempt < 2:
                    self.port, self.backend_port = free_port(), free_port()
                    continue
                raise

    def wait_ready(self, timeout=15):
        try:
            for port in (self.port, self.backend_port):
                wait_broker_ready(self.host, port, self._exit_status,
                                  lambda: self.log()[self._log_offset:], timeout)
        except NotReady as e:
            raise BrokerFailed("%s; log:\n%s" % (e, self.log()[-3000:]))

    def _exit_status(self, timeout):
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        """SIGKILL: no goodbye, no save of the in-memory store."""
        if self.running:
            os.kill(self.process.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)
        # A restart must bind this port again, whoever chose it.
        self._fixed_port = True

    def stop(self):
        """SIGTERM: mosquitto saves its store and exits."""
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._fixed_port = True

    def restart(self, timeout=15):
        """SIGKILL (if running) and start again on the same port."""
        self.kill()
        return self.start(timeout)

    def close(self):
        for probe in self._probes:
            probe.close()
        self._probes = []
        if self.process is not None:
            self.kill()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self):
        return self.start() if not self.running else self

    def __exit__(self, *exc):
        self.close()

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    # -- clients ----------------------------------------------------------------

    def port_for(self, identity=None):
        """The listener `identity` belongs on: the backend's certificate on
        backend_port, everyone else (terminals, strangers) on port."""
        if self.tls and identity is not None and identity == self.pki.backend_name:
            return self.backend_port
        return self.port

    def settings(self, identity=None):
        """What an agent or backend needs to connect as `identity` (a name in
        the PKI, or None for a plain broker)."""
        out = {"host": self.host, "port": self.port_for(identity), "tls": self.tls}
        if self.tls:
            paths = self.pki.identity(identity)
            out.update({"ca": self.pki.ca_cert, "cert": paths.cert, "key": paths.key})
        return out

    def client(self, identity=None, cert=None, client_id=None, ca=None):
        """A paho 2.x client, MQTT 5, TLS configured, not connected.

        `identity`: a device id or backend name from the PKI; or `cert`: any
        CertPaths (an expired or foreign one); neither on a TLS broker means
        TLS without a client certificate.  `ca`: what the client trusts for
        the broker (default: the fleet CA).
        """
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=client_id or "t-" + uuid.uuid4().hex[:12],
                             protocol=mqtt.MQTTv5)
        if self.tls:
            if cert is None and identity is not None:
                cert = self.pki.identity(identity)
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                                 cafile=ca or self.pki.ca_cert)
            if cert is not None:
                context.load_cert_chain(cert.cert, cert.key)
            client.tls_set_context(context)
        return client

    def probe(self, identity=None, cert=None, client_id=None, ca=None, clean_start=True,
              session_expiry=None):
        """An MqttProbe (not yet open).  `clean_start=False` with
        `session_expiry` (seconds) gives a persistent session."""
        return MqttProbe(self.client(identity, cert=cert, client_id=client_id, ca=ca),
                         clean_start=clean_start, session_expiry=session_expiry)

    def connect(self, identity=None, timeout=10, port=None, **kwargs):
        """An MqttProbe connected as `identity` (raises if refused); closed
        with the broker.  `port`: another listener than `port_for` picks."""
        probe = self.probe(identity, **kwargs)
        outcome = probe.open(self.host, port or self.port_for(identity), timeout)
        if not outcome.connected:
            probe.close()
            raise BrokerFailed("connect as %r refused: %s" % (identity, outcome.detail))
        self._probes.append(probe)
        return probe

    def try_connect(self, identity=None, cert=None, timeout=10, **kwargs):
        """ConnectOutcome(connected, detail); closes the connection either way."""
        probe = self.probe(identity, cert=cert, **kwargs)
        try:
            return probe.open(self.host, self.port_for(identity), timeout)
        finally:
            probe.close()

    def tls_refusal(self, cert=None, ca=None, timeout=10):
        """Why the broker refuses a TLS client, as the client's OpenSSL says
        it (e.g. "SSLV3_ALERT_CERTIFICATE_EXPIRED"); None if the broker
        answers an MQTT 5 CONNECT with a CONNACK.

        Speaks TLS 1.2 on purpose: there the server judges the client
        certificate inside the handshake, so its alert always reaches us.
        Under TLS 1.3 the verdict comes after the client's handshake is done,
        and a CONNECT already in flight can make the server's close a reset
        that destroys the alert.  (try_connect covers TLS 1.3 with paho.)
        """
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                             cafile=ca or self.pki.ca_cert)
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        if cert is not None:
            context.load_cert_chain(cert.cert, cert.key)
        client_id = ("probe-" + uuid.uuid4().hex[:12]).encode()
        # MQTT 5 CONNECT: "MQTT", level 5, clean start, keepalive 60, no props.
        variable = b"\x00\x04MQTT\x05\x02\x00\x3c\x00"
        payload = len(client_id).to_bytes(2, "big") + client_id
        body = variable + payload
        packet = b"\x10" + bytes([len(body)]) + body
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout) as raw:
                with context.wrap_socket(raw, server_hostname=self.host) as tls:
                    tls.sendall(packet)
                    first = tls.recv(1)
        except ssl.SSLError as exc:
            return exc.reason or str(exc)
        except OSError as exc:
            return "%s: %s" % (type(exc).__name__, exc)
        if first == b"\x20":
            return None
        return "no CONNACK: %r" % first


# -- pytest fixtures (import them into a conftest.py or test module) -------------

@pytest.fixture(scope="session")
def fleet_pki(tmp_path_factory):
    """host_tools.pki.bundle.TestPki: CA, broker, dev-a, dev-b, backend, plus an
    expired dev-a certificate and a dev-a certificate from a foreign CA."""
    from daozhang.host_tools.pki.bundle import make_test_pki
    return make_test_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def tls_broker(fleet_pki):
    """mosquitto with examples/mosquitto (TLS, client certs, ACL), started."""
    broker = Broker(pki=fleet_pki)
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


@pytest.fixture
def plain_broker():
    """mosquitto without TLS or ACL (anonymous), started."""
    broker = Broker(tls=False)
    try:
        broker.start()
        yield broker
    finally:
        broker.close()
