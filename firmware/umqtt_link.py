"""The umqtt adapter around the sync rules (SPEC 6), for the microcontroller
terminal: micropython-lib's `umqtt.simple` API, one cooperative loop, no
threads.  Every protocol decision is agent/core/sync/sync_agent.py's, the same
core the daemon's paho adapter (agent/mqtt_link.py) drives; this file only
moves bytes between it, the client and the journal.

The firmware's loop calls `step(now_ms)` often.  A step reads what the
broker sent (check_msg), runs the sync rules once, and publishes what they
decided.  umqtt's QoS 1 publish returns once its PUBACK came, so a publish
completes its token at once; a down message arriving meanwhile is handled
in the callback, and what it wants published waits in the outbox until the
publish under way returned (umqtt cannot nest publishes).  umqtt sends a
down message's PUBACK after the callback returned, i.e. after its actions
(the saved anchor, the journal commit of a settlement ack): a board that
dies in between never acknowledged it, and the broker redelivers it from
the persistent session (clean_session False; SPEC 7.8.3).

Injected (nothing imported from umqtt here, so tests pass a fake client):

- `make_client()`: a new, unconnected `umqtt.simple.MQTTClient` (client id,
  server, port, keepalive, ssl with the client certificate).  Prefer
  umqtt.simple to umqtt.robust: robust's hidden reconnect keeps the core
  from hearing of a loss (it then resends only after the ack timeout).
- `journal`, with: tail() -> next seq; read(from_seq, max_bytes) ->
  (records, end, last_hash); hash_at(seq); cursors() -> noted (acked,
  released); note_cursors(acked, released); cursors_pending(); fill();
  flush_cursors(); save_anchor(payload); load_anchor() -> bytes or None.
- `verify(pub, message, sig)`, `rand()` in [0, 1), `log(event, **fields)`,
  `alert(kind, severity, detail)`, `settlements(items, redelivered) ->
  result` (SPEC 7.8.7), `release_floor()`, `status_extra()`.

MQTT 3.1.1 (umqtt) has no PUBACK reason codes and no DUP flag to the
callback: a refused publish looks accepted (the receipts are resent after
the ack timeout), and `redelivered` is always False.  Portable: CPython and
MicroPython.
"""

from daozhang.agent.core.journal import checkpoint
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.agent.core.sync.sync_agent import SyncAgent, perform
from daozhang.agent.core.sync.sync_stall import DEFAULT_STALL_AFTER_MS

TOPIC_ROOT = "daozhang/v1/"
KEEPALIVE_S = 30
MESSAGES_PER_STEP = 8        # down messages read in one step (the loop has other work)
# The sync rules' settings on a board (a caller's settings override them).
# max_alerts: alert messages waiting to go up (64 transitions, about 17 KB
# each): an outage's burst (100 overdue sales: 300 transitions, 80 KB)
# keeps its newest two and counts the rest dropped, within the 96 KiB
# heap; every transition is a journal record all the same (SPEC 6.2).
BOARD_SETTINGS = {"max_batch_bytes": 8192, "max_inflight": 4, "max_alerts": 2}


def _no_log(event, **fields):
    pass


def _monotonic(ticks_ms, ticks_diff):
    """(ticks_ms, ticks_diff): the injected ones, else MicroPython's, else CPython's monotonic clock."""
    import time
    if ticks_ms is None:
        ticks_ms = getattr(time, "ticks_ms", None) or (lambda: int(time.monotonic() * 1000))
    if ticks_diff is None:
        ticks_diff = getattr(time, "ticks_diff", None) or (lambda a, b: a - b)
    return ticks_ms, ticks_diff


def _random():
    import random
    return random.getrandbits(16) / 65536


class UmqttLink:
    def __init__(self, make_client, journal, device_id, backend_pub, verify, now,
                 settings=None, near_full=0.8, stall_after_ms=DEFAULT_STALL_AFTER_MS,
                 keepalive_s=KEEPALIVE_S, rand=None, log=None, alert=None, settlements=None, deposit=None,
                 release_floor=None, status_extra=None, ticks_ms=None, ticks_diff=None):
        self.make_client = make_client
        self.journal = journal
        self.device_id = device_id
        self.topic = TOPIC_ROOT + device_id + "/"
        self.keepalive_ms = keepalive_s * 1000
        self.rand = rand or _random
        self.log = log or _no_log
        self.alert = alert or (lambda kind, severity, detail: None)
        self.settlements = settlements
        self.deposit = deposit              # f(msg): a verified deposit finding (SPEC 7.10.2)
        merged = dict(BOARD_SETTINGS)
        merged.update(settings or {})
        self._handlers = self._action_handlers()
        self.agent = SyncAgent(device_id, backend_pub, checkpoint.key_id(backend_pub), verify,
                               journal.hash_at, journal.cursors(), journal.tail(), merged,
                               near_full, stall_after_ms, release_floor, status_extra)
        self.client = None
        self.now = now
        # Keepalive pings are timed on a monotonic clock (time.ticks_ms and
        # ticks_diff on the board, wrap-safe): `now` is the RTC, which NTP or
        # a flat battery can move by hours, and a jump must neither skip the
        # pings (the broker would drop us) nor bunch them.
        self._ticks, self._ticks_diff = _monotonic(ticks_ms, ticks_diff)
        self._outbox = []            # (topic, payload, token, retain) to publish
        self._flushing = False
        self._last_sent = self._ticks()
        payload = journal.load_anchor()
        if payload is not None:
            self._perform(self.agent.adopt_anchor(payload, now))

    # -- the firmware's calls ------------------------------------------------------

    def queue_alert(self, alert, now):
        self.agent.queue_alert(alert, now)

    def queue_alerts(self, alerts, now):
        self.agent.queue_alerts(alerts, now)

    def step(self, now):
        """One turn: read the broker, run the sync rules, publish."""
        self.now = now
        if self.client is not None:
            self._read_down()
        j = self.journal
        self._perform(self.agent.tick(now, j.tail(), j.fill(), j.cursors_pending()))
        self._flush()
        idle_ms = self._ticks_diff(self._ticks(), self._last_sent)
        if self.client is not None and idle_ms >= self.keepalive_ms // 2:
            self._call(self.client.ping)
            self._last_sent = self._ticks()

    def next_wakeup(self, now):
        """Milliseconds until step() has timed work (None: only on input)."""
        return self.agent.next_wakeup(now)

    def close(self):
        client, self.client = self.client, None
        if client is not None:
            try:
                client.disconnect()
            except Exception:
                pass

    def position(self):
        return self.agent.position()

    def health(self):
        return self.agent.health()

    # -- the client ------------------------------------------------------------------

    def _connect(self):
        client = self.make_client()
        client.set_callback(self._on_message)
        client.set_last_will((self.topic + "status").encode(),
                             msgs.encode_status(self.device_id, "offline", 0), True, 1)
        try:
            client.connect(False)
            for leaf in ("acks", "config"):
                client.subscribe((self.topic + leaf).encode(), 1)
        except Exception as exc:          # OSError, umqtt's MQTTException (refused)
            try:
                client.disconnect()           # a socket half set up must not leak
            except Exception:
                pass
            self._lost("connect: %s" % (exc,))
            return
        self.client = client
        self._last_sent = self._ticks()
        self._perform(self.agent.connected(self.now))

    def _read_down(self):
        for _ in range(MESSAGES_PER_STEP):
            if self.client is None or self._call(self.client.check_msg) is None:
                return

    def _call(self, fn, *args):
        """A client call; an error means the connection is gone."""
        try:
            return fn(*args)
        except Exception as exc:
            self._lost("network: %s" % (exc,))
            return None

    def _on_message(self, topic, payload):
        topic = topic.decode() if isinstance(topic, bytes) else topic
        if not topic.startswith(self.topic):
            return                           # not ours: umqtt acknowledges it all the same
        now = self.now
        self._perform(self.agent.message(topic[len(self.topic):], bytes(payload), now, False))
        self._perform(self.agent.down_done(now))

    def _flush(self):
        if self._flushing:
            return                           # inside a publish: it continues the loop
        self._flushing = True
        try:
            while self._outbox and self.client is not None:
                topic, payload, token, retain = self._outbox.pop(0)
                client = self.client
                try:
                    client.publish((self.topic + topic).encode(), payload, retain, 1)
                except Exception as exc:
                    self._lost("network: %s" % (exc,))
                    break
                self._last_sent = self._ticks()
                if token is not None and client is self.client:
                    self._perform(self.agent.puback(token, self.now))
        finally:
            self._flushing = False

    def _lost(self, cause):
        self.close()
        self._outbox = []                    # the core resends from the last ack
        self._perform(self.agent.lost(self.now, self.rand(), cause))

    # -- actions -----------------------------------------------------------------------

    def _perform(self, actions):
        perform(actions, self._handlers)

    def _action_handlers(self):
        return {
            "connect": self._connect,
            "read": self._read,
            "publish": lambda topic, payload, token, retain: self._outbox.append((topic, payload, token, retain)),
            "save_anchor": self.journal.save_anchor,
            "cursors": self.journal.note_cursors,
            "flush_cursors": self._flush_cursors,
            "alert": lambda kind, severity, detail: self.alert(kind, severity, detail),
            "settlements": self._apply_settlements,
            "deposit": lambda msg: self.deposit is not None and self.deposit(msg),
            "log": lambda event, fields: self.log(event, **fields),
        }

    def _read(self, start, max_bytes):
        try:
            records, end, last_hash = self.journal.read(start, max_bytes)
        except Exception as exc:      # a damaged journal: the core retries slowly
            self._perform(self.agent.read_failed(start, str(exc), self.now))
        else:
            self._perform(self.agent.frames(records, end, last_hash, self.now))

    def _flush_cursors(self):
        try:
            self.journal.flush_cursors()
        except Exception as exc:
            self.log("sync_flush_failed", level="warning", error=str(exc))
        self._perform(self.agent.flushed(self.journal.fill()))

    def _apply_settlements(self, items, redelivered):
        if self.settlements is not None:
            self.agent.settled(self.settlements(items, redelivered))
