"""One way to build a paho MQTT 5 client with TLS client certificates, for
every process that talks to the broker (agent, backend workers, `backend
settle`, the fleet view, the fleet simulator, demos).  Not under agent/, so
the backend and host tools need not import an agent adapter.
"""

import socket
import ssl


def tls_context(ca, cert, key=None):
    """A client TLS context that trusts `ca` and presents `cert` (with `key`,
    or a PEM holding both)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    context.load_cert_chain(cert, key)
    return context


def paho_client(client_id, tls=None, manual_ack=False):
    """A paho MQTT 5 client (callback API 2).  `tls`: an SSLContext, a
    mapping with "ca", "cert", "key" (and "tls": False for a plain test
    broker), or None for no TLS."""
    import paho.mqtt.client as mqtt
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5, manual_ack=manual_ack)
    if isinstance(tls, ssl.SSLContext):
        client.tls_set_context(tls)
    elif tls is not None and tls.get("tls", True):
        client.tls_set_context(tls_context(tls["ca"], tls["cert"], tls.get("key")))
    return client


def set_nodelay(client):
    """Small publishes and acks must not wait for Nagle (paho leaves it on)."""
    try:
        sock = client.socket()
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass
