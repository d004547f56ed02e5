"""The paho adapter (agent/mqtt_link.py) holds the same scripted
conversation as the umqtt adapter (tests/portable/sync_conversation.py),
over a real journal file, with a fake paho client that answers from the
script.  The real-broker tests (test_sync_outages.py, ...) cover paho
itself."""

import socket

from daozhang.agent.ack_anchor import load_anchor
from daozhang.agent.core.journal import checkpoint
from daozhang.agent.core.journal import record
from daozhang.agent.frame_reader import FrameReader
from daozhang.agent.mqtt_link import MqttLink
from dztest.sync import DEVICE, make_journal, signer, txn_payload
from portable.sync_conversation import converse

TOPIC = "daozhang/v1/%s/" % DEVICE


class Reason:
    def __init__(self, value):
        self.value = value
        self.is_failure = value >= 0x80


class Message:
    def __init__(self, topic, payload, mid):
        self.topic, self.payload, self.mid, self.qos, self.dup = topic, payload, mid, 1, False


class Info:
    def __init__(self, mid):
        self.mid = mid


class FakePaho:
    """paho's client surface as MqttLink uses it.  Callbacks run from
    loop_misc, on the link's thread, as paho's own loop would run them."""

    def __init__(self):
        self._sock, self._peer = socket.socketpair()
        self.pending = []
        self.published = []
        self.subscribed = []
        self.down_acks = []
        self.next_mid = 1

    def max_inflight_messages_set(self, n):
        pass

    def connect(self, host, port, keepalive=60, clean_start=True, properties=None):
        assert clean_start is False and properties.SessionExpiryInterval > 0
        self.pending.append(lambda: self.on_connect(self, None, None, Reason(0), None))

    def socket(self):
        return self._sock

    def want_write(self):
        return False

    def loop_read(self):
        pass

    def loop_write(self):
        pass

    def loop_misc(self):
        while self.pending:
            self.pending.pop(0)()

    def subscribe(self, topics):
        self.subscribed.extend(topics)

    def publish(self, topic, payload, qos=0, retain=False):
        mid = self._mid()
        self.published.append((topic, payload, retain))
        self.pending.append(lambda: self.on_publish(self, None, mid, Reason(0), None))
        return Info(mid)

    def deliver(self, topic, payload):
        message = Message(topic, payload, self._mid())
        self.pending.append(lambda: self.on_message(self, None, message))

    def ack(self, mid, qos):
        self.down_acks.append(mid)

    def disconnect(self):
        pass

    def _mid(self):
        self.next_mid += 1
        return self.next_mid


class Driver:
    device_id = DEVICE

    def __init__(self, tmp_path):
        self.path, self.journal = make_journal(tmp_path)
        self.backend = signer(9)
        self.backend_kid = checkpoint.key_id(self.backend.public_bytes)
        self.client = FakePaho()
        self.alerts = []
        self.link = MqttLink(self.journal, self.path, DEVICE, self.backend.public_bytes,
                             {"host": "broker.test"},
                             alert=lambda kind, sev, detail: self.alerts.append((kind, sev, detail)),
                             client_factory=lambda cfg, device_id, topic: self.client)
        self._seen = 0
        self._n = 0

    def sign(self, message):
        return self.backend.sign(message)

    def append(self, n):
        self.journal.append_many([(record.TYPE_TRANSACTION, txn_payload(self._n + i)) for i in range(n)])
        self._n += n

    def turn(self):
        """Steps until the fake client has nothing more to hand over."""
        for _ in range(10):
            self.link.wake()
            self.link.step()
            if not self.client.pending:
                self.link.wake()
                self.link.step()
                return

    def sent(self):
        out = [(t[len(TOPIC):], p, r) for t, p, r in self.client.published[self._seen:]]
        self._seen = len(self.client.published)
        return out

    def subscribed(self):
        return [t[len(TOPIC):] for t, qos in self.client.subscribed if qos == 1]

    def deliver(self, leaf, payload):
        self.client.deliver(TOPIC + leaf, payload)
        self.turn()

    def down_acks(self):
        return len(self.client.down_acks)

    def next_seq(self):
        return self.journal.ring.next_seq

    def hash_at(self, seq):
        return FrameReader(self.journal).hash_at(seq)

    def cursors(self):
        return self.journal.noted_cursors()

    def anchor(self):
        return load_anchor(self.path)

    def queue_alert(self, alert):
        self.link.publish_alert(alert)


def test_the_conversation_every_adapter_holds(tmp_path):
    d = Driver(tmp_path)
    try:
        assert converse(d)
    finally:
        d.link.stop()
        d.journal.close()
