"""The board's sync: micropython-lib's umqtt.simple driving the sans-IO sync
core (agent/core/sync.py, SPEC 6), in the firmware's one loop.

    link = SyncLink(journal, backend_pub, connect, on_settlements=terminal.settlements,
                    release_floor=terminal.release_floor)
    link.step(now_ms, rand)      # every loop step: connect/backoff, publish, read down messages

`connect()` returns a connected umqtt.simple.MQTTClient-like object (the
board's: TLS with the device's client certificate, keepalive; the tests':
the same client over the Node socket bridge, tests/mp/socket_bridge.mjs).
Everything that decides (what to publish, which ack to trust, backoff) is
the core's; this file only moves bytes and keeps the journal's cursors:

- receipts, alerts and status go up with QoS 1; umqtt's publish() waits for
  the PUBACK under the socket timeout (`timeout_ms`), so a silent broker is
  a lost connection, retried with the core's capped, jittered backoff;
- down messages (acks, settlement acks) are read with check_msg() and go
  through the core's checks; a good receipts ack commits the cursors at
  once (acked = the ack, released = up to the settlement watchdog's floor),
  so the ring can reuse what the backend holds and nothing unsettled;
- a PINGREQ goes out when nothing was sent for half the keepalive.
umqtt PUBACKs a down message when its callback returns, before its actions
are journaled: a power cut in between loses nothing, since the backend
re-acks receipts sent again and re-sends settlement acks until the
terminal's status confirms them (SPEC 6.6, 7.8.7).

Receipts batches are small here (BOARD_SETTINGS): the heap holds one batch.
"""

import errno

from daozhang.agent.core import cbor, checkpoint
from daozhang.agent.core.sync import SyncCore
from daozhang.firmware import ed25519
from daozhang.firmware.journal_frames import FrameReader

TOPIC_ROOT = "daozhang/v1/"
BOARD_SETTINGS = {"max_batch_bytes": 4096, "max_inflight": 1}
DOWN_PER_STEP = 8          # down messages read per loop step at most: sales keep their turn
ALERTS_PER_MESSAGE = 16    # alert transitions per `alerts` message (SPEC 6.2)


class SyncLink:
    def __init__(self, journal, backend_pub, connect, on_settlements=None, release_floor=None,
                 settings=None, keepalive_ms=30000, timeout_ms=10000, log=None, ticks_ms=None):
        self.journal = journal
        self.device_id = journal.ring.geo.device_id
        self.topic = TOPIC_ROOT + self.device_id + "/"
        self.connect = connect
        self.on_settlements = on_settlements
        self.release_floor = release_floor
        self.keepalive_ms = keepalive_ms
        self.timeout_ms = timeout_ms
        self.log = log or (lambda event, fields: None)
        # Keepalive runs on the monotonic ticks, not on `now` (wall time, which
        # the RTC or NTP may move): the broker counts real seconds.
        self.ticks_ms = ticks_ms or _ticks_ms
        self.reader = FrameReader(journal.storage, journal.ring)
        merged = dict(BOARD_SETTINGS)
        merged.update(settings or {})
        ring = journal.ring
        self.core = SyncCore(self.device_id, backend_pub, checkpoint.key_id(backend_pub), ed25519.verify,
                             self.reader.hash_at, ring.acked, ring.next_seq, merged)
        self.client = None
        self._now = 0
        self._last_sent = 0
        self._queued = []          # (topic, payload) the down-message callback left for the step
        self._down = 0             # down messages seen (umqtt's check_msg returns None either way)
        self.acks = 0

    # -- the loop's call ---------------------------------------------------------------

    def step(self, now, rand):
        """`now`: wall ms (message stamps and the core's timers, as on the
        Linux agent); `rand` in [0, 1) for the backoff's jitter."""
        self._now = now
        self.core.journal_progress(self.journal.ring.next_seq)
        try:
            self._perform(self.core.poll(now))
            if self.client is not None:
                self._read_down()
                self._perform(self._take_queued())
                if self.ticks_ms() - self._last_sent >= self.keepalive_ms // 2:
                    self.client.ping()
                    self._last_sent = self.ticks_ms()
        except Exception as exc:
            # OSError: closed, timed out, refused; umqtt's MQTTException (a
            # refused CONNACK) and its asserts on bad bytes from the broker.
            self._drop(now, rand, "%s: %s" % (type(exc).__name__, exc))

    def idle(self, ms):
        """The loop's wait: block up to `ms` on the broker's socket for a down
        message (an ack ends it early); offline, return at once."""
        if self.client is None:
            return
        try:
            self.client.sock.settimeout(ms / 1000)
            self.client.wait_msg()
        except OSError as exc:
            if exc.args and exc.args[0] == errno.ETIMEDOUT:
                return                 # nothing came: the loop goes on
            self._drop(self._now, 0.5, "OSError: %s" % exc)
            return
        except Exception as exc:
            self._drop(self._now, 0.5, "%s: %s" % (type(exc).__name__, exc))
            return
        self._perform(self._take_queued())

    def queue_alerts(self, actions):
        """The terminal's alert transitions, for the `alerts` topic: best
        effort (each is journaled and reaches the backend with the receipts);
        the core bounds how many messages wait."""
        for i in range(0, len(actions), ALERTS_PER_MESSAGE):
            self.core.queue_alert(cbor.dumps({"v": 1, "dev": self.device_id, "at": self._now,
                                              "alerts": [_cbor_safe(a) for a in actions[i:i + ALERTS_PER_MESSAGE]]}))

    def online(self):
        return self.core.state == "online"

    # -- actions -----------------------------------------------------------------------

    def _perform(self, actions):
        for action in actions:
            name = action[0]
            if name == "connect":
                self._connect()
            elif name == "read":
                records, end, last_hash = self.reader.read(action[1], action[2])
                self._perform(self.core.frames(records, end, last_hash, self._now))
            elif name == "publish":
                self._publish(action[1], action[2], action[3], action[4])
            elif name == "ack":
                self._accept_ack(action[1])
            elif name in ("settlement", "settlements"):
                if self.on_settlements is not None:
                    self.on_settlements([(action[1], action[2])] if name == "settlement" else action[1], self._now)
            else:                      # reject, duplicate, log
                self.log(name, action[1:])

    def _connect(self):
        try:
            client = self.connect()
            client.set_callback(self._on_message)
            client.sock.settimeout(self.timeout_ms / 1000)
            client.subscribe(self.topic + "acks", 1)
        except Exception as exc:
            self.client = None
            self._perform(self.core.lost(self._now, 0.5, "connect: %s: %s" % (type(exc).__name__, exc)))
            return
        self.client = client
        self._last_sent = self.ticks_ms()
        self._perform(self.core.connected(self._now))

    def _publish(self, topic, payload, token, retain):
        self.client.sock.settimeout(self.timeout_ms / 1000)
        self.client.publish(self.topic + topic, payload, retain, 1)     # returns at the PUBACK
        self._last_sent = self.ticks_ms()
        self._perform(self.core.puback(token, self._now))

    def _read_down(self):
        for _ in range(DOWN_PER_STEP):
            seen = self._down
            self.client.check_msg()
            self.client.sock.settimeout(self.timeout_ms / 1000)    # check_msg left it blocking
            if self._down == seen:
                return

    def _on_message(self, topic, payload):
        # Only kept here: umqtt calls this inside publish() while it waits for
        # a PUBACK, in the middle of the core's action list; the core sees the
        # message once that list is done.
        self._down += 1
        topic = topic.decode() if isinstance(topic, bytes) else topic
        if topic.startswith(self.topic):
            self._queued.append((topic[len(self.topic):], bytes(payload)))

    def _take_queued(self):
        actions = []
        while self._queued:
            topic, payload = self._queued.pop(0)
            actions.extend(self.core.message(topic, payload, self._now))
        return actions

    def _accept_ack(self, to):
        """Cursors in one signed commit: what the backend holds is acked;
        of that, what the watchdog no longer needs is released."""
        floor = None if self.release_floor is None else self.release_floor()
        released = to if floor is None else min(to, floor)
        released = max(released, self.journal.ring.released)
        self.journal.set_cursors(to, released)
        self.acks += 1

    def _drop(self, now, rand, cause):
        client, self.client = self.client, None
        self._queued = []
        if client is not None:
            try:
                client.sock.close()
            except Exception:
                pass
        self._perform(self.core.lost(now, rand, cause))


def _ticks_ms():
    import time
    return time.ticks_ms() if hasattr(time, "ticks_ms") else time.monotonic_ns() // 1000000


def _cbor_safe(value):
    if isinstance(value, dict):
        return dict((str(k), _cbor_safe(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_cbor_safe(v) for v in value]
    if value is None or isinstance(value, (bool, int, str, bytes)):
        return value
    return str(value)


def umqtt_connector(device_id, host, port, keepalive_s=30, ssl=False, ssl_params=None, mqtt_client=None):
    """connect() for SyncLink: a umqtt.simple client with the device's id,
    the retained `offline` status as its last will (SPEC 6.2) and a
    persistent session (clean_session False: the broker keeps the device's
    acks while it is away).  `ssl`/`ssl_params` as the board's umqtt takes
    them (the client certificate and key); `mqtt_client` is umqtt.simple's
    MQTTClient unless given."""
    from daozhang.agent.core import sync_messages

    def connect():
        cls = mqtt_client
        if cls is None:
            from umqtt.simple import MQTTClient as cls
        if ssl:
            client = cls(device_id, host, port, keepalive=keepalive_s, ssl=ssl, ssl_params=ssl_params or {})
        else:
            client = cls(device_id, host, port, keepalive=keepalive_s)
        client.set_last_will(TOPIC_ROOT + device_id + "/status",
                             sync_messages.encode_status(device_id, "offline", 0), True, 1)
        client.connect(False)
        return client
    return connect
