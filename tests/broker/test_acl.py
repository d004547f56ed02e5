"""The shipped mosquitto config and ACL, against a real broker (SPEC 6.10).

Negative checks need a positive synchronisation point: after the message that
must NOT arrive, an allowed sentinel is published on the same connection
path; once the sentinel arrives, the broker has processed everything sent
before it (MQTT orders messages per publisher and QoS), so "not received"
is proven without waiting on a clock.
"""

import pytest

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(60)]

UP = ("receipts", "alerts", "status")
DOWN = ("acks", "config")
NOT_AUTHORIZED = 0x87


def topic(device, leaf):
    return "daozhang/v1/%s/%s" % (device, leaf)


def payloads(messages):
    return [(m.topic, m.payload) for m in messages]


@pytest.mark.parametrize("leaf", UP)
def test_device_cannot_publish_on_another_devices_up_topic(tls_broker, leaf):
    backend = tls_broker.connect("backend")
    backend.subscribe(topic("+", leaf))
    a = tls_broker.connect("dev-a")
    b = tls_broker.connect("dev-b")

    forged = a.publish(topic("dev-b", leaf), b"forged by dev-a")
    b.publish(topic("dev-b", leaf), b"sentinel")

    seen = backend.messages_until(lambda m: m.payload == b"sentinel")
    assert payloads(seen) == [(topic("dev-b", leaf), b"sentinel")]
    # Mosquitto 2 answers a denied QoS 1 publish with PUBACK 0x87 (MQTT 5)
    # and keeps the connection.
    assert forged == NOT_AUTHORIZED
    assert a.client.is_connected()


@pytest.mark.parametrize("leaf", DOWN)
def test_device_cannot_read_another_devices_down_topic(tls_broker, leaf):
    a = tls_broker.connect("dev-a")
    # The subscription is accepted (mosquitto's acl_file checks reads at
    # delivery) but must deliver nothing of dev-b's.
    a.subscribe(topic("dev-b", leaf))
    a.subscribe("daozhang/#")
    a.subscribe(topic("dev-a", leaf))
    backend = tls_broker.connect("backend")

    backend.publish(topic("dev-b", leaf), b"for dev-b only")
    backend.publish(topic("dev-a", leaf), b"sentinel")

    seen = a.messages_until(lambda m: m.payload == b"sentinel")
    assert all(m.topic == topic("dev-a", leaf) for m in seen), payloads(seen)
    assert b"for dev-b only" not in [m.payload for m in seen]


def test_device_cannot_read_up_topics_of_others_or_publish_down(tls_broker):
    a = tls_broker.connect("dev-a")
    b = tls_broker.connect("dev-b")
    b.subscribe("daozhang/#")
    b.subscribe(topic("dev-b", "acks"))
    backend = tls_broker.connect("backend")
    backend.subscribe(topic("+", "receipts"))

    a.publish(topic("dev-a", "receipts"), b"a's receipt")       # allowed, but not for b
    assert a.publish(topic("dev-b", "acks"), b"forged ack by dev-a") == NOT_AUTHORIZED
    # backend sees a's receipt: a's publish was processed before the next line
    assert backend.next_message().payload == b"a's receipt"
    backend.publish(topic("dev-b", "acks"), b"sentinel")

    seen = b.messages_until(lambda m: m.payload == b"sentinel")
    assert payloads(seen) == [(topic("dev-b", "acks"), b"sentinel")]


def test_device_uses_its_own_topics(tls_broker):
    a = tls_broker.connect("dev-a")
    a.subscribe(topic("dev-a", "acks"))
    a.subscribe(topic("dev-a", "config"))
    backend = tls_broker.connect("backend")
    for leaf in UP:
        backend.subscribe(topic("+", leaf))

    for leaf in UP:
        assert a.publish(topic("dev-a", leaf), leaf.encode()) == 0
        msg = backend.next_message()
        assert (msg.topic, msg.payload) == (topic("dev-a", leaf), leaf.encode())
    for leaf in DOWN:
        assert backend.publish(topic("dev-a", leaf), leaf.encode()) == 0
        msg = a.next_message()
        assert (msg.topic, msg.payload) == (topic("dev-a", leaf), leaf.encode())


def test_backend_cannot_publish_up_topics(tls_broker):
    watcher = tls_broker.connect("backend")
    watcher.subscribe(topic("+", "receipts"))
    backend = tls_broker.connect("backend")
    a = tls_broker.connect("dev-a")

    assert backend.publish(topic("dev-a", "receipts"), b"forged by backend") == NOT_AUTHORIZED
    # Not the same publisher: wait until the forged one was handled by
    # sending the sentinel from the same client after its PUBACK.
    a.publish(topic("dev-a", "receipts"), b"sentinel")
    seen = watcher.messages_until(lambda m: m.payload == b"sentinel")
    assert payloads(seen) == [(topic("dev-a", "receipts"), b"sentinel")]


def test_retained_status_and_last_will(tls_broker):
    device = tls_broker.probe("dev-a")
    device.client.will_set(topic("dev-a", "status"), b"offline", qos=1, retain=True)
    assert device.open(tls_broker.host, tls_broker.port).connected
    device.publish(topic("dev-a", "status"), b"online", retain=True)

    backend = tls_broker.connect("backend")
    backend.subscribe(topic("+", "status"))
    first = backend.next_message()
    assert (first.payload, first.retain) == (b"online", True)

    # Kill the connection without DISCONNECT: the will goes out.
    device.client.socket().close()
    will = backend.next_message(timeout=30)
    assert (will.topic, will.payload) == (topic("dev-a", "status"), b"offline")
    device.close()
