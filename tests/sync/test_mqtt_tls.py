"""The one paho-with-TLS factory (daozhang/mqtt_tls.py) against the real
TLS mosquitto (client certificates, the fleet CA)."""

import socket
import ssl
import threading

import pytest

from daozhang.mqtt_tls import paho_client, set_nodelay, tls_context


def _connect(client, broker):
    """The CONNACK's reason, or the handshake's error (a refusal)."""
    done, result = threading.Event(), []
    client.on_connect = lambda c, u, flags, rc, props: (result.append(rc), done.set())
    try:
        client.connect(broker.host, broker.port, keepalive=30)
    except (ssl.SSLError, OSError) as exc:
        return exc
    client.loop_start()
    try:
        assert done.wait(20), "no CONNACK"
        return result[0]
    finally:
        set_nodelay(client)
        nodelay = client.socket().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        client.disconnect()
        client.loop_stop()
        assert nodelay


def test_a_device_certificate_from_the_settings_connects(tls_broker):
    rc = _connect(paho_client("dev-a", tls_broker.settings("dev-a")), tls_broker)
    assert not rc.is_failure


def test_a_context_built_once_can_be_shared(tls_broker, fleet_pki):
    paths = fleet_pki.identity("dev-b")
    context = tls_context(fleet_pki.ca_cert, paths.cert, paths.key)
    rc = _connect(paho_client("dev-b", context), tls_broker)
    assert not rc.is_failure


def test_a_broker_outside_the_trusted_ca_is_refused(tls_broker, fleet_pki, tmp_path):
    paths = fleet_pki.identity("dev-a")
    stranger = tmp_path / "other-ca.pem"
    stranger.write_text(open(paths.cert).read())       # a certificate that is not the CA
    with pytest.raises(ssl.SSLError):
        paho_client("dev-a", {"ca": str(stranger), "cert": paths.cert, "key": paths.key}) \
            .connect(tls_broker.host, tls_broker.port)
