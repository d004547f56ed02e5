"""The broker fixture itself: restart on the same port, persistence, cleanup."""

import os

import pytest

from dztest.broker import Broker, render_config

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(90)]


def test_render_config_rewrites_only_named_keys():
    template = "# listener 1 in a comment\nlistener 8883\ncafile /etc/ca\nmax_queued_messages 10\n"
    out = render_config(template, {"listener": "1234 127.0.0.1", "user": "root"}, drop=("cafile",))
    assert out.splitlines() == ["# listener 1 in a comment", "listener 1234 127.0.0.1",
                                "max_queued_messages 10", "user root"]


def test_render_config_gives_each_listener_its_own_port():
    template = "listener 8883\ncafile /etc/ca\nlistener 8884 10.0.0.5\ncafile /etc/ca\n"
    out = render_config(template, {"listener": ["1 127.0.0.1", "2 127.0.0.1"], "cafile": "/t/ca"})
    assert out.splitlines() == ["listener 1 127.0.0.1", "cafile /t/ca",
                                "listener 2 127.0.0.1", "cafile /t/ca"]
    with pytest.raises(ValueError):
        render_config(template, {"listener": ["1 127.0.0.1"]})


def test_backend_and_terminals_get_their_own_listener(tls_broker):
    assert tls_broker.settings("backend")["port"] == tls_broker.backend_port
    assert tls_broker.settings("dev-a")["port"] == tls_broker.port != tls_broker.backend_port
    assert tls_broker.try_connect("backend").connected


def test_sigkill_and_restart_on_the_same_port(tls_broker):
    port = tls_broker.port
    first_pid = tls_broker.process.pid
    tls_broker.restart()
    assert tls_broker.port == port
    assert tls_broker.process.pid != first_pid
    assert tls_broker.try_connect("dev-a").connected


def test_queued_message_survives_a_graceful_restart(tls_broker):
    """A persistent session (clean_start False, session expiry) keeps a QoS 1
    message queued while its subscriber is away, across SIGTERM + start."""
    backend = tls_broker.probe("backend", client_id="backend-1", clean_start=False,
                               session_expiry=3600)
    assert backend.open(tls_broker.host, tls_broker.backend_port).connected
    backend.subscribe("$share/backend/daozhang/v1/+/receipts")
    backend.close()

    tls_broker.connect("dev-a").publish("daozhang/v1/dev-a/receipts", b"queued")
    tls_broker.stop()  # SIGTERM: mosquitto writes its store
    assert os.path.exists(os.path.join(tls_broker.data_dir, "mosquitto.db"))
    tls_broker.start()

    backend = tls_broker.probe("backend", client_id="backend-1", clean_start=False,
                               session_expiry=3600)
    assert backend.open(tls_broker.host, tls_broker.backend_port).connected
    try:
        msg = backend.next_message()
        assert (msg.topic, msg.payload) == ("daozhang/v1/dev-a/receipts", b"queued")
    finally:
        backend.close()


def test_plain_broker_without_tls(plain_broker):
    probe = plain_broker.connect()
    probe.subscribe("any/topic")
    probe.publish("any/topic", b"hello")
    assert probe.next_message().payload == b"hello"


def test_close_kills_the_process_and_removes_its_directory(fleet_pki):
    broker = Broker(pki=fleet_pki).start()
    directory, process = broker.directory, broker.process
    broker.close()
    assert process.poll() is not None
    assert not os.path.exists(directory)


def test_a_broker_that_cannot_start_reports_its_log(fleet_pki):
    from dztest.broker import BrokerFailed
    broker = Broker(pki=fleet_pki, extra={"keyfile": "/nonexistent/broker.key"})
    try:
        with pytest.raises(BrokerFailed, match="keyfile|server key"):
            broker.start(timeout=10)
    finally:
        broker.close()
