"""A client id belongs to one certificate (issue 10), against the shipped config.

examples/mosquitto has two listeners: terminals on `port`, where the broker
replaces every client id with the certificate's CN, and backend workers on
`backend_port`, where each worker keeps its own stable client id.  A fleet
certificate that asks for another terminal's id on the terminals' listener
gets its own id, so it neither kicks the terminal off nor wipes what the
broker queued for it.  The last test is the control: the same attack on the
backend listener does take the session, which is why that listener must be
unreachable from the terminals (docs/DEPLOY.md) and proves the first tests
can fail.

No sleeps: the takeover happens while the broker handles CONNECT, before
its CONNACK, so once the hostile client is connected a QoS 1 round trip by
the victim shows whether it is still connected.
"""

import queue

import pytest

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(60)]



def accepted(reason_code):
    """A PUBACK that is not a refusal (0x10 = accepted, no subscriber yet)."""
    return reason_code < 0x80


def topic(device, leaf):
    return "daozhang/v1/%s/%s" % (device, leaf)


def disconnects(probe):
    """The disconnect events the probe has seen so far (no waiting)."""
    seen = []
    while True:
        try:
            kind, rc = probe._events.get_nowait()
        except queue.Empty:
            return seen
        if kind == "disconnect":
            seen.append(rc)


def test_another_terminals_client_id_does_not_kick_it_off(tls_broker):
    victim = tls_broker.connect("dev-a", client_id="dev-a")
    hostile = tls_broker.connect("dev-b", client_id="dev-a")

    # Both connections are alive: each completes a QoS 1 round trip.
    assert accepted(victim.publish(topic("dev-a", "status"), b"online"))
    assert accepted(hostile.publish(topic("dev-b", "status"), b"online"))
    assert disconnects(victim) == []
    assert "Client dev-a already connected" not in tls_broker.log()


def test_another_terminals_client_id_does_not_wipe_its_queued_messages(tls_broker):
    victim = tls_broker.probe("dev-a", client_id="dev-a", clean_start=False, session_expiry=3600)
    assert victim.open(tls_broker.host, tls_broker.port).connected
    assert victim.subscribe(topic("dev-a", "acks")) == [1]
    victim.close()

    backend = tls_broker.connect("backend", client_id="backend-h-1")
    assert accepted(backend.publish(topic("dev-a", "acks"), b"settlement ack 1"))

    # A clean start under the victim's id would discard its session and queue.
    hostile = tls_broker.connect("dev-b", client_id="dev-a", clean_start=True)
    assert accepted(hostile.publish(topic("dev-b", "status"), b"online"))

    back = tls_broker.connect("dev-a", client_id="dev-a", clean_start=False, session_expiry=3600)
    message = back.next_message()
    assert (message.topic, message.payload) == (topic("dev-a", "acks"), b"settlement ack 1")


def test_backend_workers_keep_their_own_client_ids(tls_broker):
    """On the backend listener two workers with stable ids coexist and share
    the receipts (on the terminals' listener both would become `backend`)."""
    group = "$share/backend-t/" + topic("+", "receipts")
    workers = [tls_broker.connect("backend", client_id="backend-h-%d" % n, clean_start=False,
                                  session_expiry=3600)
               for n in (1, 2)]
    assert tls_broker.port_for("backend") == tls_broker.backend_port
    for worker in workers:
        assert worker.subscribe(group) == [1]
    device = tls_broker.connect("dev-a", client_id="dev-a")
    for n in range(4):
        assert accepted(device.publish(topic("dev-a", "receipts"), b"r%d" % n))
    got = []
    while len(got) < 4:
        for worker in workers:
            try:
                got.append(worker.messages.get(timeout=0.2).payload)
            except queue.Empty:
                pass
    assert sorted(got) == [b"r0", b"r1", b"r2", b"r3"]
    for worker in workers:
        assert accepted(worker.publish(topic("dev-a", "acks"), b"ack"))
        assert disconnects(worker) == []


def test_control_the_backend_listener_does_not_bind_client_ids(tls_broker):
    """The same attack on the backend listener takes the terminal's session:
    keep that listener off the terminals' networks."""
    victim = tls_broker.connect("dev-a", client_id="dev-a")
    victim.client.reconnect_delay_set(min_delay=60, max_delay=60)  # stay down once kicked
    tls_broker.connect("dev-b", client_id="dev-a", port=tls_broker.backend_port)
    kind, _rc = victim._events.get(timeout=10)
    assert kind == "disconnect"
