"""The umqtt adapter (firmware/umqtt_link.py) against a fake umqtt.simple
client: the conversation every adapter holds (sync_conversation.py), then
what is umqtt's own (reconnect, a message inside a publish, keepalive).
Plain functions: pytest runs them on CPython, tests/mp on MicroPython."""

import hashlib

from daozhang.agent.core import cbor
from daozhang.agent.core.journal import checkpoint
from daozhang.firmware.umqtt_link import UmqttLink
from portable.sync_conversation import converse, receipts_ack
from portable.sync_fakes import FakeBroker, MemoryJournal

DEVICE = "mcu-sync-1"
BACKEND_PUB = b"P" * 32


def fake_sign(message):
    digest = hashlib.sha256(message).digest()
    return digest + digest


def fake_verify(pub, message, sig):
    return pub == BACKEND_PUB and sig == fake_sign(message)


class Driver:
    device_id = DEVICE
    backend_kid = checkpoint.key_id(BACKEND_PUB)

    def __init__(self, journal=None, **kw):
        self.broker = FakeBroker()
        self.journal = journal or MemoryJournal()
        self.alerts = []
        self.logs = []
        self.now = 1000
        self.mono = kw.pop("mono", 0)            # the board's ticks_ms: monotonic, apart from the RTC
        kw.setdefault("ticks_ms", lambda: self.mono)
        self.link = UmqttLink(self.broker.client, self.journal, DEVICE, BACKEND_PUB, fake_verify,
                              self.now, rand=lambda: 0.5,
                              alert=lambda kind, sev, detail: self.alerts.append((kind, sev, detail)),
                              log=lambda event, **f: self.logs.append(event), **kw)
        self._seen = 0

    def sign(self, message):
        return fake_sign(message)

    def append(self, n):
        self.journal.append(n)

    def turn(self, ms=10):
        """Steps at one moment until one publishes nothing more."""
        self.now += ms
        self.mono += ms
        for _ in range(10):
            before = (len(self.broker.published), len(self.broker.connects))
            self.link.step(self.now)
            if (len(self.broker.published), len(self.broker.connects)) == before:
                return

    def sent(self):
        prefix = "daozhang/v1/%s/" % DEVICE
        out = [(p[0].decode()[len(prefix):], p[1], p[2]) for p in self.broker.published[self._seen:]]
        self._seen = len(self.broker.published)
        return out

    def subscribed(self):
        return [t.decode().rsplit("/", 1)[1] for t, qos in self.broker.subscribed if qos == 1]

    def deliver(self, leaf, payload):
        self.broker.inbox.append((("daozhang/v1/%s/%s" % (DEVICE, leaf)).encode(), payload))
        self.turn()

    def down_acks(self):
        return self.broker.down_acks

    def next_seq(self):
        return self.journal.tail()

    def hash_at(self, seq):
        return self.journal.hash_at(seq)

    def cursors(self):
        return self.journal.cursors()

    def anchor(self):
        return self.journal.anchor

    def queue_alert(self, alert):
        self.link.queue_alert(alert, self.now)


def test_the_conversation_every_adapter_holds():
    assert converse(Driver())


def test_connects_with_a_persistent_session_and_an_offline_will():
    d = Driver()
    d.turn()
    client = d.broker.clients[0]
    assert d.broker.connects == [False]
    assert client.will[0] == ("daozhang/v1/%s/status" % DEVICE).encode() and client.will[2:] == (True, 1)
    assert cbor.loads(client.will[1])["state"] == "offline"


def test_a_lost_connection_resends_from_the_last_ack_after_the_backoff():
    d = Driver()
    d.append(4)
    d.turn()
    d.deliver("acks", receipts_ack(d, 2))
    d.sent()
    d.append(1)
    d.broker.down = True
    d.turn()                                   # the publish fails: offline
    assert d.link.position()["state"] == "offline" and "sync_offline" in d.logs
    d.broker.down = False
    d.turn(ms=1)                               # backoff 0.5 * 500 ms not over yet
    assert d.sent() == [] and len(d.broker.connects) == 1
    d.turn(ms=300)
    sent = d.sent()
    assert [s[0] for s in sent] == ["status", "receipts"] and len(d.broker.connects) == 2
    assert len(cbor.loads(sent[1][1])["frames"]) == d.next_seq() - 2


def test_a_message_inside_a_publish_is_handled_there():
    d = Driver()
    d.append(2)
    d.turn()
    d.sent()
    d.append(1)
    # The ack of the first batch arrives while umqtt waits for the second's PUBACK.
    d.broker.during_publish.append((("daozhang/v1/%s/acks" % DEVICE).encode(), receipts_ack(d, 2)))
    d.turn()
    assert d.cursors()[0] == 2 and d.broker.down_acks == 1 and d.broker.during_publish == []
    assert [s[0] for s in d.sent()] == ["receipts"]
    d.deliver("acks", receipts_ack(d, 3))
    assert d.cursors()[0] == 3 and d.link.position()["state"] == "online"


def test_idle_links_ping_within_the_keepalive():
    d = Driver(keepalive_s=10)
    d.turn()
    d.turn(ms=4000)
    assert d.broker.pings == 0
    d.turn(ms=1500)
    assert d.broker.pings == 1


def test_keepalive_pings_follow_the_monotonic_clock_when_the_rtc_jumps():
    d = Driver(keepalive_s=10)
    d.turn()
    d.now += 86400000                   # NTP sets the RTC a day ahead: no burst of pings
    d.turn(ms=1000)
    assert d.broker.pings == 0
    d.now -= 2 * 86400000               # and two days back: the pings do not stop
    d.turn(ms=4500)
    assert d.broker.pings == 1
    d.turn(ms=4000)
    assert d.broker.pings == 1
    d.turn(ms=1000)
    assert d.broker.pings == 2


def test_keepalive_survives_the_ticks_wrapping():
    period = 1 << 30                    # MicroPython's ticks_ms wraps here; ticks_diff knows

    def ticks_diff(a, b):
        return ((a - b + period // 2) % period) - period // 2

    d = Driver(keepalive_s=10, mono=period - 2000, ticks_diff=ticks_diff)
    d.link._ticks = lambda: d.mono % period
    d.link._last_sent = d.link._ticks()
    d.turn()
    d.turn(ms=5500)                     # across the wrap
    assert d.broker.pings == 1


def test_a_refused_connect_backs_off_and_retries():
    d = Driver()
    d.broker.down = True
    d.turn()
    assert d.link.position()["state"] == "offline" and d.broker.connects == []
    d.broker.down = False
    d.turn(ms=1000)
    assert d.link.position()["state"] == "online" and d.broker.connects == [False]


def test_a_saved_anchor_is_adopted_at_start():
    journal = MemoryJournal()
    journal.append(3)
    probe = Driver(journal=MemoryJournal())
    probe.journal = journal
    journal.anchor = receipts_ack(probe, 3)
    d = Driver(journal=journal)
    assert d.link.position()["acked"] == 3 and journal.cursors() == (3, 3)
    assert d.alerts == []


def test_an_anchor_beyond_the_journal_is_a_security_alert():
    journal = MemoryJournal()
    journal.append(1)
    probe = Driver(journal=MemoryJournal())
    journal.append(4)
    probe.journal = journal
    payload = receipts_ack(probe, 5)
    journal.frames = journal.frames[:1]
    journal.anchor = payload
    d = Driver(journal=journal)
    assert d.link.position()["acked"] == 0 and [a[0] for a in d.alerts] == ["security"]
