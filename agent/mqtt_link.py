"""The paho-mqtt adapter around the sync rules (SPEC 6): sockets, paho
callbacks, one thread, and two files (the ack anchor, the status file).
Every protocol decision is agent/core/sync/sync_agent.py's; this file performs
its actions.

One thread owns the paho client (MQTT 5, TLS client certificate, persistent
session) and the SyncAgent.  It runs paho's external-loop API
(loop_read/loop_write/loop_misc on our own select), so paho callbacks only
queue events.  Reconnects follow the core's backoff (paho's own reconnect
is not used).

Down messages are acknowledged by hand (paho's manual_ack): the PUBACK goes
out only after the message's actions are done (the journal commit of a
settlement ack, the saved anchor of a receipts ack, or the rejection).  An
agent killed in between never acknowledged it, so the broker redelivers it
from the persistent session (SPEC 7.8.3).  Other threads talk to the link
through `wake()`: the journal's commit listener, `publish_alert(s)`, `stop()`.
The agent keeps journaling while offline: nothing here blocks a commit.
"""

import json
import random
import select
import socket
import ssl
import threading
import time

from daozhang.agent.ack_anchor import load_anchor, save_anchor
from daozhang.agent.core.errors import DaozhangError, JournalFull, StorageError
from daozhang.agent.core.journal import checkpoint
from daozhang.agent.core.sync import sync_messages as msgs, topics
from daozhang.agent.core.sync.sync_agent import SyncAgent, perform
from daozhang.agent.core.sync.sync_stall import DEFAULT_STALL_AFTER_MS
from daozhang.agent.frame_reader import FrameReader
from daozhang.agent.mqtt_causes import describe_connect_error, describe_socket_error, puback_ok
from daozhang.mqtt_tls import paho_client, set_nodelay
from daozhang.files import atomic_write
from daozhang.signing import ed25519_verify

SESSION_EXPIRY_S = 14 * 86400
INBOX_LIMIT = 256      # publish_alert(s) calls waiting for the link thread
# Alert transitions waiting for the link thread, as dicts (about 500 bytes
# each): an outage burst queued 7,680 of them (4 MiB) while the thread was
# publishing; past this many the oldest lists give way (their latest state
# per kind is kept, for the resend of active alerts).  Every transition is
# journaled and reaches the backend with the records: the topic copy is the
# fast path, best effort.
INBOX_ALERTS = 512            # alert transitions waiting for the link thread (each a dict of ~1.3 KB; all journaled)


def now_ms():
    return time.time_ns() // 1000000




class MqttLink:
    """Runs the sync rules against a broker; start(), stop(), alive()."""

    def __init__(self, journal, journal_path, device_id, backend_pub, mqtt, sync_settings=None,
                 log=None, alert=None, release_floor=None, deposit_hook=None,
                 near_full=0.8, status_file=None, status_interval_s=1.0, settlements_hook=None,
                 stall_after_s=DEFAULT_STALL_AFTER_MS / 1000, status_extra=None, client_factory=None):
        """`client_factory(mqtt, device_id, topic)`: a paho client (default
        device_client; tests pass a fake)."""
        self.journal = journal
        self.journal_path = journal_path
        self.device_id = device_id
        self.mqtt = mqtt
        self.client_factory = client_factory or device_client
        self.log = log or (lambda event, level="info", **kw: None)
        self.alert = alert or (lambda kind, severity, detail: None)
        self.deposit_hook = deposit_hook            # f(msg): a verified deposit finding (SPEC 7.10.2)
        # f([(msg, payload), ...], redelivered) -> {"settle_n", "moved", "rejected"}:
        # a batch applied in one commit (SPEC 7.8.7).
        self.settlements_hook = settlements_hook
        self.status_file = status_file
        self.status_interval_ms = int(status_interval_s * 1000)
        self.reader = FrameReader(journal)
        self.topic = topics.device_prefix(device_id)
        self._handlers = self._action_handlers()
        self.agent = SyncAgent(device_id, backend_pub, checkpoint.key_id(backend_pub), ed25519_verify,
                               self.reader.hash_at, journal.noted_cursors(), journal.ring.next_seq,
                               sync_settings, near_full, max(1, int(stall_after_s * 1000)),
                               release_floor, status_extra)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._lock = threading.Lock()
        self._inbox = []                # (alert or [alerts], at) from other threads
        self._inbox_alerts = 0          # transitions in _inbox
        self.alert_messages_dropped = 0  # transitions the topic copy gave up (journaled all the same)
        self._events = []               # from paho callbacks, on our thread
        self._mids = {}                 # mid -> (token, topic)
        self._stop = threading.Event()
        self._thread = None
        self._client = None
        self._paho_error = None
        self._last_status = 0
        self._status_dirty = True
        self.failed = None
        payload = load_anchor(journal_path)
        if payload is not None:
            self._perform(self.agent.adopt_anchor(payload, now_ms()))
        journal.commit_listeners.append(lambda next_seq: self.wake())

    def position(self):
        """{"acked", "next_seq", "state"}: where sync stands."""
        return self.agent.position()

    # -- thread-safe entry points -------------------------------------------------------

    def wake(self):
        try:
            self._wake_w.send(b"!")
        except (BlockingIOError, OSError):
            pass

    def publish_alert(self, alert):
        """Queue an alert transition (a dict) for the `alerts` topic."""
        self._to_inbox((alert, now_ms()))

    def publish_alerts(self, alerts):
        """Queue many alert transitions, 64 to an `alerts` message (SPEC 6.2)."""
        self._to_inbox((list(alerts), now_ms()))

    def _to_inbox(self, item):
        with self._lock:
            self._inbox.append(item)
            self._inbox_alerts += _count(item)
            while len(self._inbox) > INBOX_LIMIT or (self._inbox_alerts > INBOX_ALERTS
                                                     and len(self._inbox) > 1):
                # Best effort (every transition is journaled): keep the newest.
                self._drop_oldest()
        self.wake()

    def _drop_oldest(self):
        """Drop the oldest inbox entry but for its last transition of each
        kind (merged into the next entry), so the link still knows what is
        active per kind; the caller holds _lock."""
        alerts, at = self._inbox.pop(0)
        alerts = alerts if isinstance(alerts, list) else [alerts]
        last = {}
        for alert in alerts:
            last[alert.get("kind")] = alert
        kept = list(last.values())
        self.alert_messages_dropped += len(alerts) - len(kept)
        following, at_next = self._inbox[0]
        following = following if isinstance(following, list) else [following]
        self._inbox[0] = (kept + following, at_next)
        self._inbox_alerts -= len(alerts) - len(kept)

    def start(self):
        self._thread = threading.Thread(target=self._run, name="mqtt-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout=5.0):
        self._stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        self._write_status(force=True)

    def alive(self):
        return self._thread is not None and self._thread.is_alive()

    # -- the loop ---------------------------------------------------------------------

    def _run(self):
        try:
            while not self._stop.is_set():
                self.step()
        except Exception as exc:   # never take the daemon down; alive() turns False
            self.failed = "%s: %s" % (type(exc).__name__, exc)
            self.log("sync_crashed", level="error", error=self.failed)
        finally:
            self._disconnect()

    def step(self):
        """One turn of the loop (the link's thread runs them; tests drive it)."""
        with self._lock:
            inbox, self._inbox, self._inbox_alerts = self._inbox, [], 0
        for alert, at in inbox:
            if isinstance(alert, list):
                self.agent.queue_alerts(alert, at)
            else:
                self.agent.queue_alert(alert, at)
        journal = self.journal
        pending = journal.noted_cursors() != (journal.ring.acked, journal.ring.released)
        self._perform(self.agent.tick(now_ms(), journal.ring.next_seq, journal.effective_fill(),
                                      pending))
        self._write_status()
        wait = self.agent.next_wakeup(now_ms())
        self._wait_and_pump(1.0 if wait is None else min(1.0, wait / 1000.0))
        self._handle_events()

    def _wait_and_pump(self, timeout):
        sock = self._client.socket() if self._client is not None else None
        rlist = [self._wake_r] + ([sock] if sock is not None else [])
        wlist = [sock] if sock is not None and self._client.want_write() else []
        try:
            readable, writable, _ = select.select(rlist, wlist, [], timeout)
        except (OSError, ValueError):
            readable, writable = [], []
        if self._wake_r in readable:
            try:
                while self._wake_r.recv(4096):
                    pass
            except (BlockingIOError, OSError):
                pass
        if sock is None or self._client is None:
            return
        try:
            if sock in readable:
                self._client.loop_read()
            if self._client is not None and (sock in writable or self._client.want_write()):
                self._client.loop_write()
            if self._client is not None:
                self._client.loop_misc()
        except (ssl.SSLError, OSError) as exc:
            self._events.append(("lost", describe_connect_error(exc)))

    def _handle_events(self):
        while self._events:
            event = self._events.pop(0)
            now = now_ms()
            if event[0] == "connack":
                if event[1].is_failure:
                    cause = "auth: broker refused the connection: %s" % event[1]
                    self.log("sync_connect_refused", level="error", cause=cause)
                    self._drop(cause)
                else:
                    self._client.subscribe([(self.topic + "acks", 1), (self.topic + "config", 1)])
                    self._perform(self.agent.connected(now))
            elif event[0] == "lost":
                if self.agent.core.state != "offline":
                    self._drop(event[1])
            elif event[0] == "puback":
                token, topic = self._mids.pop(event[1], (None, None))
                if not puback_ok(event[2]):
                    self._perform(self.agent.publish_refused(topic, str(event[2])))
                if token is not None:
                    self._perform(self.agent.puback(token, now))
            elif event[0] == "message":
                _, topic, payload, mid, qos, client, dup = event
                self._perform(self.agent.message(topic, payload, now, dup))
                self._ack_down(mid, qos, client)
                self._perform(self.agent.down_done(now_ms()))
            self._status_dirty = True

    # -- actions -------------------------------------------------------------------------

    def _perform(self, actions):
        perform(actions, self._handlers)
        self._status_dirty = True

    def _action_handlers(self):
        return {
            "connect": self._connect,
            "read": self._read,
            "publish": self._publish,
            "save_anchor": lambda payload: save_anchor(self.journal_path, payload),
            "cursors": self.journal.note_cursors,
            "flush_cursors": self._flush_cursors,
            "alert": lambda kind, severity, detail: self.alert(kind, severity, detail),
            "settlements": self._apply_settlements,
            "deposit": lambda msg: self.deposit_hook is not None and self.deposit_hook(msg),
            "log": lambda event, fields: self.log(event, **fields),
        }

    def _read(self, start, max_bytes):
        try:
            records, end, last_hash = self.reader.read(start, max_bytes)
        except (KeyError, DaozhangError, OSError) as exc:   # a damaged journal
            self._perform(self.agent.read_failed(start, str(exc), now_ms()))
        else:
            self._perform(self.agent.frames(records, end, last_hash, now_ms()))

    def _flush_cursors(self):
        try:
            self.journal.set_cursors()
        except (JournalFull, StorageError):
            pass
        self._perform(self.agent.flushed(self.journal.effective_fill()))

    def _apply_settlements(self, items, redelivered):
        result = None
        if self.settlements_hook is not None:
            result = self.settlements_hook(items, redelivered)
        self.agent.settled(result)

    # -- paho -----------------------------------------------------------------------------

    def _make_client(self):
        client = self.client_factory(self.mqtt, self.device_id, self.topic)
        client.max_inflight_messages_set(max(20, self.agent.core.settings["max_inflight"] + 12))
        client.on_connect = lambda c, u, flags, rc, props: self._events.append(("connack", rc))
        client.on_disconnect = lambda c, u, flags, rc, props: self._events.append(
            ("lost", self._disconnect_cause(rc)))
        client.on_log = self._on_paho_log
        # PUBACK 0x10 "no matching subscribers" is success too (nobody reads
        # right now); a refusal is final for that message: receipts stay
        # unacked and are resent after the ack timeout anyway.
        client.on_publish = lambda c, u, mid, reason, props: self._events.append(
            ("puback", mid, reason))
        client.on_message = self._on_message
        return client

    def _on_paho_log(self, client, userdata, level, text):
        import paho.mqtt.client as mqtt
        if level == mqtt.MQTT_LOG_ERR:
            self._paho_error = text

    def _disconnect_cause(self, rc):
        error, self._paho_error = self._paho_error, None
        return describe_socket_error(error) if error else "disconnected: %s" % rc

    def _on_message(self, client, userdata, message):
        topic = message.topic
        if topic.startswith(self.topic):
            self._events.append(("message", topic[len(self.topic):], bytes(message.payload),
                                 message.mid, message.qos, client, bool(message.dup)))
        elif message.qos:
            client.ack(message.mid, message.qos)      # not ours to handle: never redeliver

    def _ack_down(self, mid, qos, client):
        """PUBACK a down message once its actions are done.  On a connection
        lost meanwhile the mid belongs to a dead session: the broker
        redelivers the message instead."""
        if qos and client is self._client and client is not None:
            try:
                client.ack(mid, qos)
            except Exception as exc:      # a dying socket: the broker redelivers
                self.log("sync_down_ack_failed", level="warning", error=str(exc))

    def _connect(self):
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        cfg = self.mqtt
        try:
            if self._client is None:
                self._client = self._make_client()
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = int(cfg.get("session_expiry_s", SESSION_EXPIRY_S))
            self._client.connect(cfg["host"], int(cfg.get("port", 8883)),
                                 keepalive=int(cfg.get("keepalive", 30)), clean_start=False,
                                 properties=props)
            set_nodelay(self._client)
        except Exception as exc:
            cause = describe_connect_error(exc)
            self.log("sync_connect_failed", level="warning", cause=cause)
            self._drop(cause)

    def _publish(self, topic, payload, token, retain):
        if self._client is None:
            return
        info = self._client.publish(self.topic + topic, payload, qos=1, retain=retain)
        self._mids[info.mid] = (token, topic)

    def _drop(self, cause):
        self._disconnect()
        self._mids = {}
        self._perform(self.agent.lost(now_ms(), random.random(), cause))

    def _disconnect(self):
        client, self._client = self._client, None
        if client is None:
            return
        for close in (client.disconnect, lambda: client.socket() and client.socket().close()):
            try:
                close()
            except Exception:
                pass

    # -- health ---------------------------------------------------------------------------

    def counters(self):
        return self.agent.counters()

    def health(self):
        out = self.agent.health()
        out["failed"] = self.failed
        out["at"] = now_ms()
        return out

    def _write_status(self, force=False):
        if self.status_file is None:
            return
        now = now_ms()
        if not force and (not self._status_dirty or now - self._last_status < self.status_interval_ms):
            return
        self._last_status = now
        self._status_dirty = False
        atomic_write(self.status_file, json.dumps(self.health(), sort_keys=True), durable=False)


def device_client(cfg, device_id, topic):
    """A paho client for the device: TLS client certificate, manual acks,
    the retained `offline` status as its last will (SPEC 6.2)."""
    client = paho_client(cfg.get("client_id") or device_id, cfg, manual_ack=True)
    client.will_set(topic + "status", msgs.encode_status(device_id, "offline", 0), qos=1, retain=True)
    return client


def _count(item):
    return len(item[0]) if isinstance(item[0], list) else 1
