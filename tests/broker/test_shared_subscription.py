"""The backend's MQTT 5 shared subscription under the shipped ACL.

Mosquitto 2.0's acl_file does not judge the subscription string; it checks
`read` when it delivers, against the message's real topic.  So
$share/<group>/daozhang/v1/+/receipts is governed by the backend's
`topic read daozhang/v1/+/receipts`, and a device that tries the same share
gets nothing of other devices.
"""

import pytest

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(60)]

SHARE = "$share/backend/daozhang/v1/+/receipts"


def test_two_backend_clients_on_one_share_split_the_messages(tls_broker):
    workers = [tls_broker.connect("backend"), tls_broker.connect("backend")]
    for worker in workers:
        assert worker.subscribe(SHARE) == [1]  # granted QoS 1
    a = tls_broker.connect("dev-a")
    b = tls_broker.connect("dev-b")

    sent = []
    for i in range(20):
        device, client = (("dev-a", a) if i % 2 else ("dev-b", b))
        payload = ("%s-%d" % (device, i)).encode()
        assert client.publish("daozhang/v1/%s/receipts" % device, payload) == 0
        sent.append(payload)

    received = [[], []]
    pending = set(sent)
    while pending:
        for index, worker in enumerate(workers):
            while not worker.messages.empty():
                payload = worker.next_message().payload
                received[index].append(payload)
                pending.discard(payload)
        if pending:
            # Block on whichever worker (round-robin means both get some).
            for index, worker in enumerate(workers):
                try:
                    payload = worker.next_message(timeout=0.2).payload
                except TimeoutError:
                    continue
                received[index].append(payload)
                pending.discard(payload)
    # Sentinel through the share: everything published before it is delivered.
    a.publish("daozhang/v1/dev-a/receipts", b"sentinel")
    for index, worker in enumerate(workers):
        while not worker.messages.empty():
            received[index].append(worker.next_message().payload)

    everything = received[0] + received[1]
    if b"sentinel" not in everything:  # still in flight to one of them
        got = None
        while got is None:
            for index, worker in enumerate(workers):
                try:
                    got = worker.next_message(timeout=0.2).payload
                    received[index].append(got)
                    break
                except TimeoutError:
                    continue
        everything = received[0] + received[1]
    assert sorted(p for p in everything if p != b"sentinel") == sorted(sent)  # each exactly once
    assert everything.count(b"sentinel") == 1
    assert received[0] and received[1], "a shared subscription must split the load"


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
