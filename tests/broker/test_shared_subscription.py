"""The backend's MQTT 5 shared subscription under the shipped ACL.

Mosquitto 2.0's acl_file does not judge the subscription string; it checks
`read` when it delivers, against the message's real topic.  So
$share/<group>/daozhang/v1/+/receipts is governed by the backend's
`topic read daozhang/v1/+/receipts`, and a device that tries the same share
gets nothing of other devices.
"""

import queue

import pytest

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(60)]

SHARE = "$share/backend/daozhang/v1/+/receipts"


def test_two_backend_clients_on_one_share_split_the_messages(tls_broker):
    workers = [tls_broker.connect("backend"), tls_broker.connect("backend")]
    inbox = queue.Queue()  # (worker index, payload) from both workers
    for index, worker in enumerate(workers):
        worker.client.on_message = lambda c, u, m, index=index: inbox.put((index, m.payload))
        assert worker.subscribe(SHARE) == [1]  # granted QoS 1
    a = tls_broker.connect("dev-a")
    b = tls_broker.connect("dev-b")

    sent = []
    for i in range(20):
        device, client = ("dev-a", a) if i % 2 else ("dev-b", b)
        payload = ("%s-%d" % (device, i)).encode()
        assert client.publish("daozhang/v1/%s/receipts" % device, payload) == 0
        sent.append(payload)

    # Deliveries to two connections are not ordered against each other, so
    # wait for the full set (each get has a timeout), then check counts.
    received = [inbox.get(timeout=10) for _ in sent]
    assert sorted(p for _, p in received) == sorted(sent)  # every one exactly once
    assert inbox.empty()
    by_worker = [[p for i, p in received if i == index] for index in (0, 1)]
    assert by_worker[0] and by_worker[1], "the share must split the load: %r" % by_worker


def test_device_cannot_read_others_through_a_share(tls_broker):
    a = tls_broker.connect("dev-a")
    a.subscribe("$share/sneaky/daozhang/v1/+/receipts")
    a.subscribe("daozhang/v1/dev-a/acks")
    b = tls_broker.connect("dev-b")
    backend = tls_broker.connect("backend")
    backend.subscribe(SHARE)

    b.publish("daozhang/v1/dev-b/receipts", b"b's receipt")
    assert backend.next_message().payload == b"b's receipt"
    backend.publish("daozhang/v1/dev-a/acks", b"sentinel")
    seen = a.messages_until(lambda m: m.payload == b"sentinel")
    assert [m.payload for m in seen] == [b"sentinel"]


def test_a_device_inside_the_backends_share_group_swallows_messages(tls_broker):
    """Characterisation of Mosquitto 2.0 (why the group name must be secret):
    acl_file cannot refuse a SUBSCRIBE, so a device may join the backend's
    share group; the broker then hands it its turn of the round robin, the
    read check denies delivery, and that message is dropped, not given to
    another member.  If this test starts failing after a Mosquitto upgrade,
    the broker got safer: update docs/SPEC.md §6.10.4."""
    backend = tls_broker.connect("backend")
    backend.subscribe(SHARE)
    intruder = tls_broker.connect("dev-a")
    intruder.subscribe(SHARE)
    device = tls_broker.connect("dev-b")
    sent = [b"r%d" % i for i in range(10)]
    for payload in sent:
        device.publish("daozhang/v1/dev-b/receipts", payload)
    # Sync point: four sentinels; the round robin alternates, so some reach
    # the backend.  Messages from one publisher to one subscriber keep their
    # order, so once the first sentinel is in, everything before it is too.
    for _ in range(4):
        device.publish("daozhang/v1/dev-b/receipts", b"sentinel")
    received = [m.payload for m in backend.messages_until(lambda m: m.payload == b"sentinel")]
    got = [p for p in received if p in sent]
    assert 0 < len(got) < len(sent), received   # some lost to the intruder's turn
    assert intruder.messages.empty()            # ... who could not read them either


def test_a_secret_share_group_keeps_intruders_out(tls_broker):
    secret = "$share/backend-5f0c9e2a/daozhang/v1/+/receipts"
    backend = tls_broker.connect("backend")
    backend.subscribe(secret)
    intruder = tls_broker.connect("dev-a")
    for guess in ("$share/backend/daozhang/v1/+/receipts",
                  "$share/daozhang/daozhang/v1/+/receipts", "daozhang/v1/+/receipts"):
        intruder.subscribe(guess)
    device = tls_broker.connect("dev-b")
    sent = [b"r%d" % i for i in range(10)] + [b"sentinel"]
    for payload in sent:
        device.publish("daozhang/v1/dev-b/receipts", payload)
    received = [m.payload for m in backend.messages_until(lambda m: m.payload == b"sentinel")]
    assert received == sent
    assert intruder.messages.empty()
