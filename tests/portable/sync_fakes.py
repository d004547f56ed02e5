"""Fakes for the umqtt adapter's tests (CPython and MicroPython): a journal
in memory with the adapter's journal interface, and a client with
micropython-lib's umqtt.simple API that records what it is asked to send."""

import hashlib

TYPE_TRANSACTION = 1


class MemoryJournal:
    def __init__(self):
        self.frames = []
        self.noted = (0, 0)
        self.durable = (0, 0)
        self.anchor = None
        self.fill_value = 0.1

    def append(self, n):
        for _ in range(n):
            self.frames.append(("frame-%d" % len(self.frames)).encode())

    def tail(self):
        return len(self.frames)

    def read(self, from_seq, max_bytes):
        if from_seq >= len(self.frames):
            return [], from_seq, None
        records, size, seq = [], 0, from_seq
        while seq < len(self.frames) and (not records or size + len(self.frames[seq]) <= max_bytes):
            records.append((seq, TYPE_TRANSACTION, self.frames[seq]))
            size += len(self.frames[seq])
            seq += 1
        return records, seq, self.hash_at(seq - 1)

    def hash_at(self, seq):
        if 0 <= seq < len(self.frames):
            return hashlib.sha256(self.frames[seq]).digest()
        return None

    def cursors(self):
        return self.noted

    def note_cursors(self, acked, released):
        self.noted = (max(self.noted[0], acked), max(self.noted[1], released))

    def cursors_pending(self):
        return self.noted != self.durable

    def flush_cursors(self):
        self.durable = self.noted

    def fill(self):
        return self.fill_value

    def save_anchor(self, payload):
        self.anchor = payload

    def load_anchor(self):
        return self.anchor


class FakeUmqtt:
    """umqtt.simple's MQTTClient surface.  `inbox`: (topic, payload) the
    broker will deliver, one per check_msg; `during_publish`: delivered
    inside the next QoS 1 publish (as umqtt does while it waits for the
    PUBACK).  `fail`: the next call raises OSError (a dead connection)."""

    def __init__(self, broker):
        self.broker = broker
        self.cb = None
        self.will = None
        self.connected = False
        self.fail = False
        self.publishing = False

    def _check(self):
        if self.fail or self.broker.down:
            self.fail = False
            raise OSError(104, "ECONNRESET")

    def set_callback(self, cb):
        self.cb = cb

    def set_last_will(self, topic, msg, retain=False, qos=0):
        self.will = (topic, msg, retain, qos)

    def connect(self, clean_session=True):
        self._check()
        self.broker.connects.append(clean_session)
        self.connected = True
        return False

    def subscribe(self, topic, qos=0):
        self._check()
        self.broker.subscribed.append((topic, qos))

    def publish(self, topic, msg, retain=False, qos=0):
        assert not self.publishing, "a publish inside a publish: umqtt would lose a PUBACK"
        self._check()
        self.broker.published.append((topic, msg, retain, qos))
        self.publishing = True
        try:
            while self.broker.during_publish:
                self._deliver(self.broker.during_publish.pop(0))
        finally:
            self.publishing = False

    def check_msg(self):
        self._check()
        if not self.broker.inbox:
            return None
        self._deliver(self.broker.inbox.pop(0))
        return 0x32

    def _deliver(self, message):
        self.cb(message[0], message[1])
        self.broker.down_acks += 1          # umqtt PUBACKs once the callback returned

    def ping(self):
        self._check()
        self.broker.pings += 1

    def disconnect(self):
        self.connected = False


class FakeBroker:
    def __init__(self):
        self.inbox = []
        self.during_publish = []
        self.published = []
        self.subscribed = []
        self.connects = []
        self.down_acks = 0
        self.pings = 0
        self.down = False
        self.clients = []

    def client(self):
        c = FakeUmqtt(self)
        self.clients.append(c)
        return c
