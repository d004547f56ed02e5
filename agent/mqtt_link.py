"""The thin paho-mqtt adapter around the sync core (SPEC 6).

One thread owns the paho client (MQTT 5, TLS client certificate, persistent
session) and the SyncCore.  It runs paho's external-loop API
(loop_read/loop_write/loop_misc on our own select), so every protocol
decision stays in agent/core/sync.py and paho callbacks only queue events.
Reconnects follow the core's backoff (paho's own reconnect is not used).

Down messages (acks, settlement acks, config) are acknowledged by hand
(paho's manual_ack): the PUBACK goes out only after the message's actions
are done, i.e. after the journal commit that records a settlement ack (or
the saved anchor of a receipts ack), or after it was rejected.  An agent
killed in between never acknowledged it, so the broker redelivers it from
the persistent session when the agent reconnects (settlement-acks.md 7.8.3).
Other threads talk to it through `wake()`: the journal's commit listener
(new records to send), `publish_alert()`, `stop()`.

The agent keeps journaling while offline: nothing here blocks a commit.
"""

import json
import os
import random
import select
import socket
import ssl
import threading
import time

from daozhang.agent.core import cbor
from daozhang.agent.core import checkpoint
from daozhang.agent.core import sync_messages as msgs, topics
from daozhang.agent.core.errors import DaozhangError, JournalFull, StorageError
from daozhang.agent.core.sync import SyncCore
from daozhang.agent.core.sync_stall import (DEFAULT_STALL_AFTER_MS, PUBLISH_REFUSED, READ_FAILED,
                                            StallWatch)
from daozhang.agent.sync_journal import FrameReader, save_anchor, load_anchor
from daozhang.files import atomic_write
from daozhang.signing import ed25519_verify

TOPIC_ROOT = topics.ROOT
SESSION_EXPIRY_S = 14 * 86400
CLEARED_STATES = ("clear", "resolved", "withdrawn", "expired", "inactive")
# Alert transitions per `alerts` message (publish_alerts): with the sync
# core's queue of waiting messages (max_alerts), this bounds what the topic
# path holds in memory (64 x ~400 bytes x 256 messages: about 6 MiB).
ALERTS_PER_MESSAGE = 64
ALERTS_IN_LIMIT = 256      # alert messages waiting for the link thread


def now_ms():
    return time.time_ns() // 1000000


def describe_connect_error(exc):
    """One line naming the cause of a failed connect (TLS, refused, DNS)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "tls: broker certificate not trusted (%s): check mqtt.ca" % exc.verify_message
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None) or str(exc)
        hint = ""
        if "CERTIFICATE" in str(reason).upper() or "UNKNOWN_CA" in str(reason).upper():
            hint = ": the broker refused our client certificate (expired, or not from the fleet CA?)"
        return "tls: %s%s" % (reason, hint)
    if isinstance(exc, ConnectionRefusedError):
        return "refused: nothing listening (broker down?)"
    if isinstance(exc, socket.gaierror):
        return "dns: %s" % exc
    if isinstance(exc, OSError):
        return "network: %s" % (exc.strerror or exc)
    return "%s: %s" % (type(exc).__name__, exc)


def describe_socket_error(text):
    """Name the cause in paho's socket error text (TLS alerts come after the
    handshake in TLS 1.3: the broker refusing our certificate shows here)."""
    up = text.upper()
    if "SSL" in up or "ALERT" in up or "CERTIFICATE" in up:
        if "EXPIRED" in up:
            hint = "our client certificate has expired: renew it (daozhang pki device)"
        elif "UNKNOWN_CA" in up or "BAD_CERTIFICATE" in up or "CERTIFICATE_REQUIRED" in up \
                or "UNSUPPORTED_CERTIFICATE" in up:
            hint = "the broker refused our client certificate (not issued by the fleet CA?)"
        elif "REVOKED" in up:
            hint = "our client certificate is revoked"
        else:
            hint = "TLS failure"
        return "tls: %s (%s)" % (text, hint)
    return "network: " + text


class MqttLink:
    """Runs the sync core against a broker; start(), stop(), alive()."""

    def __init__(self, journal, journal_path, device_id, backend_pub, mqtt, sync_settings=None,
                 log=None, alert=None, release_floor=None, settlement_hook=None,
                 near_full=0.8, status_file=None, status_interval_s=1.0, settlements_hook=None,
                 stall_after_s=DEFAULT_STALL_AFTER_MS / 1000):
        self.journal = journal
        self.journal_path = journal_path
        self.device_id = device_id
        self.backend_pub = backend_pub
        self.backend_kid = checkpoint.key_id(backend_pub)
        self.mqtt = mqtt
        self.log = log or (lambda event, level="info", **kw: None)
        self.alert = alert or (lambda kind, severity, detail: None)
        self.release_floor = release_floor
        self.settlement_hook = settlement_hook
        # f([(msg, payload), ...], redelivered) -> {"settle_n", "moved", "rejected"}:
        # a batch applied in one commit (SPEC 7.8.7).
        self.settlements_hook = settlements_hook
        self.settle_n = None            # the terminal's confirmation cursor, as last reported
        self._status_now = False        # republish the status (the cursor moved)
        self._online_since = 0
        # A link that is up but moves nothing raises sync_stalled (SPEC 6.12).
        self.stall = StallWatch(max(1, int(stall_after_s * 1000)))
        self._stall_problem = None
        self.near_full = near_full
        self.status_file = status_file
        self.status_interval_ms = int(status_interval_s * 1000)
        self.reader = FrameReader(journal)
        self.topic = topics.device_prefix(device_id)
        self.core = SyncCore(device_id, backend_pub, self.backend_kid, ed25519_verify,
                             self.reader.hash_at, journal.noted_cursors()[0],
                             journal.ring.next_seq, sync_settings)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._lock = threading.Lock()
        self._alerts_in = []
        self.alert_messages_dropped = 0
        self._active_alerts = {}
        self._resend_active = False
        self._events = []
        self._mids = {}
        self._mid_topics = {}
        self._down_dup = False
        self._stop = threading.Event()
        self._thread = None
        self._client = None
        self._near_full_raised = False
        self._paho_error = None
        self._last_release_check = 0
        self._floor_at = None
        self._floor_value = None
        # Settlement plugin hook: f() -> map merged into the retained status
        # (the alert summary); the status is republished when alerts change.
        self.status_extra = None
        self._last_status = 0
        self._status_dirty = True
        self.failed = None
        self._adopt_anchor()
        journal.commit_listeners.append(self._on_commit)

    # -- start-up: the saved anchor ---------------------------------------------

    def _adopt_anchor(self):
        """The saved ack may be newer than the cursors in the last checkpoint
        (they ride on the next commit): take it back after a restart, once it
        passes the same checks as a fresh ack."""
        payload = load_anchor(self.journal_path)
        if payload is None:
            return
        probe = SyncCore(self.device_id, self.backend_pub, self.backend_kid, ed25519_verify,
                         self.reader.hash_at, 0, self.journal.ring.next_seq)
        actions = probe.message("acks", payload, now_ms())
        kind = actions[0][0] if actions else None
        if kind == "ack" or (kind == "duplicate" and actions[0][1] == 0):
            to = probe.acked
            if to > self.core.acked:
                self._move_cursors(to)
                self.core.acked = self.core.next_send = to
            self.log("sync_anchor_loaded", to=to)
        else:
            reason = actions[0][1] if kind == "reject" else kind
            self.log("sync_anchor_rejected", level="error", reason=reason)
            # An anchor beyond the journal: rollback or truncation (SPEC 3.11, 6.6).
            self.alert("security", "critical", {"detail": "saved ack anchor does not match the "
                                                           "journal: %s" % reason})

    # -- thread-safe entry points -------------------------------------------------------

    def wake(self):
        try:
            self._wake_w.send(b"!")
        except (BlockingIOError, OSError):
            pass

    def _on_commit(self, next_seq):
        self.wake()

    def publish_alert(self, alert):
        """Queue an alert transition (a dict) for the `alerts` topic."""
        payload = cbor.dumps({"v": 1, "dev": self.device_id, "at": now_ms(),
                              "alert": _cbor_safe(alert)})
        with self._lock:
            self._alerts_in.append(payload)
            # Remember what is still active: sent again once a backend ack
            # proves a worker is subscribed (alerts published while no
            # worker was are dropped by the broker; the backend dedups).
            kind = alert.get("kind")
            if alert.get("state") in CLEARED_STATES:
                self._active_alerts.pop(kind, None)
            else:
                self._active_alerts[kind] = payload
        self.wake()

    def publish_alerts(self, alerts):
        """Queue many alert transitions: ALERTS_PER_MESSAGE to one `alerts`
        message ({"alerts": [...]}, SPEC 6.2), so an outage's 100,000
        overdue sales go up in hundreds of messages, not 100,000."""
        stamp = now_ms()
        payloads = []
        for i in range(0, len(alerts), ALERTS_PER_MESSAGE):
            chunk = [_cbor_safe(a) for a in alerts[i:i + ALERTS_PER_MESSAGE]]
            payloads.append(cbor.dumps({"v": 1, "dev": self.device_id, "at": stamp,
                                        "alerts": chunk}))
        last = {}
        for alert in alerts:
            last[alert.get("kind")] = alert
        with self._lock:
            self._alerts_in.extend(payloads)
            over = len(self._alerts_in) - ALERTS_IN_LIMIT
            if over > 0:
                # The topic copy is best effort (every transition is journaled
                # and reaches the backend with the receipts): while the link is
                # busy, keep the newest, so memory stays bounded in a flood.
                del self._alerts_in[:over]
                self.alert_messages_dropped += over
            for kind, alert in last.items():
                if alert.get("state") in CLEARED_STATES:
                    self._active_alerts.pop(kind, None)
                else:
                    self._active_alerts[kind] = cbor.dumps(
                        {"v": 1, "dev": self.device_id, "at": stamp, "alert": _cbor_safe(alert)})
        self.wake()

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
                self._step()
        except Exception as exc:   # never take the daemon down; alive() turns False
            self.failed = "%s: %s" % (type(exc).__name__, exc)
            self.log("sync_crashed", level="error", error=self.failed)
        finally:
            self._disconnect()

    def _step(self):
        now = now_ms()
        with self._lock:
            alerts, self._alerts_in = self._alerts_in, []
        for payload in alerts:
            self.core.queue_alert(payload)
        if alerts and self.status_extra is not None and self.core.state == "online":
            self._publish("status", b"", None, True)
        self.core.journal_progress(self.journal.ring.next_seq)
        self._check_fill()
        if now - self._last_release_check >= 1000:
            self._last_release_check = now
            self._refresh_release()
        self._perform(self.core.poll(now))
        self._watch_stall(now_ms())
        self._write_status()
        wait = self.core.next_wakeup(now_ms())
        timeout = 1.0 if wait is None else min(1.0, wait / 1000.0)
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
        if sock is not None and self._client is not None:
            try:
                if sock in readable:
                    self._client.loop_read()
                if self._client is not None and (sock in writable or self._client.want_write()):
                    self._client.loop_write()
                if self._client is not None:
                    self._client.loop_misc()
            except (ssl.SSLError, OSError) as exc:
                self._events.append(("lost", describe_connect_error(exc)))
        self._handle_events()

    def _handle_events(self):
        while self._events:
            event = self._events.pop(0)
            now = now_ms()
            name = event[0]
            if name == "connack":
                reason = event[1]
                if reason.is_failure:
                    cause = "auth: broker refused the connection: %s" % reason
                    self.log("sync_connect_refused", level="error", cause=cause)
                    self._drop(cause)
                else:
                    self._subscribe()
                    self._online_since = now
                    self._resend_active = True
                    self._perform(self.core.connected(now))
            elif name == "lost":
                if self.core.state != "offline":
                    self._drop(event[1])
            elif name == "puback":
                token = self._mids.pop(event[1], None)
                self._mid_topics.pop(event[1], None)
                if token is not None:
                    self._perform(self.core.puback(token, now))
            elif name == "publish_refused":
                self.log("sync_publish_refused", level="warning", mid=event[1],
                         topic=self._mid_topics.get(event[1]), reason=event[2])
                self._stall_problem = (PUBLISH_REFUSED, "%s: %s" % (self._mid_topics.get(event[1]),
                                                                    event[2]))
            elif name == "message":
                # DUP: the broker redelivers it (we never acknowledged it).
                self._down_dup = event[6]
                try:
                    self._perform(self.core.message(event[1], event[2], now))
                finally:
                    self._down_dup = False
                self._ack_down(event[3], event[4], event[5])
                if self._status_now and self.core.state == "online":
                    self._status_now = False
                    self._publish("status", b"", None, True)
            self._status_dirty = True

    # -- actions -------------------------------------------------------------------------

    def _perform(self, actions):
        for action in actions:
            name = action[0]
            if name == "connect":
                self._connect()
            elif name == "read":
                try:
                    records, end, last_hash = self.reader.read(action[1], action[2])
                except (KeyError, DaozhangError, OSError) as exc:
                    # A damaged journal: keep trying, slowly (the core backs off).
                    self.log("sync_read_failed", level="error", seq=action[1], error=str(exc))
                    self._stall_problem = (READ_FAILED, str(exc))
                    records, end, last_hash = [], action[1], None
                self._perform(self.core.frames(records, end, last_hash, now_ms()))
            elif name == "publish":
                self._publish(action[1], action[2], action[3], action[4])
            elif name == "ack":
                self._accept_ack(action[1], action[3])
                if self._resend_active:
                    self._resend_active = False
                    with self._lock:
                        self._alerts_in.extend(self._active_alerts.values())
            elif name == "reject":
                self.log("sync_rejected", level="warning", reason=action[1], detail=action[2])
                self.alert("security", "critical", {"detail": "rejected down message: " + action[1],
                                                    "reason": action[1]})
            elif name == "duplicate":
                self.log("sync_duplicate_ack", to=action[1])
            elif name in ("settlement", "settlements"):
                self._apply_settlements([(action[1], action[2])] if name == "settlement"
                                        else action[1])
            elif name == "log":
                self.log(action[1], **action[2])
            self._status_dirty = True

    def _apply_settlements(self, items):
        """Hand settlement acks to the plugin; count what it refused (replay,
        stale) with the other rejected down messages, and republish the
        status when its confirmation cursor moved: that is how the backend
        learns to stop sending them (SPEC 7.8.7)."""
        result = None
        if self.settlements_hook is not None:
            result = self.settlements_hook(items, self._down_dup)
        elif self.settlement_hook is not None:
            for msg, payload in items:
                result = self.settlement_hook(msg, payload, self._down_dup)
        if not isinstance(result, dict):
            return
        for reason in result.get("rejected", ()):
            self.core.rejected[reason] = self.core.rejected.get(reason, 0) + 1
            self.core.last_reject = reason
        if result.get("settle_n") is not None:
            self.settle_n = result["settle_n"]
        if result.get("moved"):
            self._status_now = True

    def _watch_stall(self, now):
        verdict = self.stall.observe(now, self.core.state == "online", self.core.acked,
                                     self.core.next_seq, self._stall_problem)
        self._stall_problem = None
        if verdict is None:
            return
        self._status_dirty = True
        if verdict[0] == "stalled":
            self.log("sync_stalled", level="error", **verdict[2])
            self.alert("sync_stalled", "warning", verdict[2])
        else:
            self.log("sync_moving", **verdict[2])
            detail = dict(verdict[2])
            detail["state"] = "clear"
            self.alert("sync_stalled", "info", detail)

    def _floor(self, max_age_ms=1000):
        """The lowest seq not releasable, or None without a watchdog.

        Asked of the watchdog at most once a second (it walks every unsettled
        sale: too slow for every ack of a large backlog).  Its answer covers
        the records committed when it was asked; its None ("all released")
        therefore becomes the journal's next seq at that moment, so a sale
        committed since is never released on a stale answer."""
        if self.release_floor is None:
            return None
        now = now_ms()
        if self._floor_at is None or now - self._floor_at >= max_age_ms:
            known = self.journal.ring.next_seq
            floor = self.release_floor()
            self._floor_value = known if floor is None else min(floor, known)
            self._floor_at = now
        return self._floor_value

    def _move_cursors(self, to):
        floor = self._floor()
        released = to if floor is None else min(to, floor)
        self.journal.note_cursors(to, max(released, self.journal.noted_cursors()[1]))

    def _refresh_release(self):
        """The settlement watchdog's floor moves on its own (a sale settles,
        or expires): let `released` follow it up to `acked`."""
        acked, released = self.journal.noted_cursors()
        if released >= acked or self.release_floor is None:
            return
        floor = self._floor(max_age_ms=0)
        if min(acked, floor) > released:
            self.journal.note_cursors(acked, min(acked, floor))
            self._status_dirty = True

    def _accept_ack(self, to, payload):
        # The anchor first: after a crash the cursors come back from it.
        save_anchor(self.journal_path, payload)
        self._move_cursors(to)
        self.log("sync_acked", to=to, backlog=self.core.next_seq - to)

    def _check_fill(self):
        fill = self.journal.effective_fill()
        if fill >= self.near_full and not self._near_full_raised:
            self._near_full_raised = True
            if self.journal.noted_cursors() != (self.journal.ring.acked, self.journal.ring.released):
                # Near full: make the freed space durable now (SPEC 6.6).
                try:
                    self.journal.set_cursors()
                except (JournalFull, StorageError):
                    pass
                fill = self.journal.effective_fill()
                if fill < self.near_full:
                    self._near_full_raised = False
                    return
            self.log("journal_near_full", level="warning", fill="%.3f" % fill)
            self.alert("journal_near_full", "warning", {"fill": "%.3f" % fill,
                                                        "threshold": "%.3f" % self.near_full})
        elif fill < self.near_full and self._near_full_raised:
            self._near_full_raised = False
            self.log("journal_near_full_cleared", fill="%.3f" % fill)
            self.alert("journal_near_full", "info", {"state": "clear", "fill": "%.3f" % fill})

    # -- paho -----------------------------------------------------------------------------

    def _make_client(self):
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        cfg = self.mqtt
        client = device_client(cfg, self.device_id, self.topic)
        client.max_inflight_messages_set(max(20, self.core.settings["max_inflight"] + 12))
        client.on_connect = lambda c, u, flags, rc, props: self._events.append(("connack", rc))
        client.on_disconnect = lambda c, u, flags, rc, props: self._events.append(
            ("lost", self._disconnect_cause(rc)))
        client.on_log = self._on_paho_log
        client.on_publish = self._on_puback
        client.on_message = self._on_message
        self._connect_props = Properties(PacketTypes.CONNECT)
        self._connect_props.SessionExpiryInterval = int(cfg.get("session_expiry_s", SESSION_EXPIRY_S))
        return client

    def _on_paho_log(self, client, userdata, level, text):
        import paho.mqtt.client as mqtt
        if level == mqtt.MQTT_LOG_ERR:
            self._paho_error = text

    def _disconnect_cause(self, rc):
        error, self._paho_error = self._paho_error, None
        if error:
            return describe_socket_error(error)
        return "disconnected: %s" % rc

    def _on_puback(self, client, userdata, mid, reason, props):
        # Success is 0x00, or 0x10 "no matching subscribers" (nobody is
        # subscribed right now: no backend worker, or an alert nobody reads);
        # both mean the broker took the message, neither that it is stored
        # (only the backend's ack says so; mqtt-topics.md 3).  A failure code
        # (0x80 and up, e.g. 0x87 not authorised: the ACL) is final for this
        # message: resending would be refused again.  It is logged and the
        # token completes all the same; receipts stay unacked and are resent
        # after the ack timeout anyway.
        if not puback_ok(reason):
            self._events.append(("publish_refused", mid, str(reason)))
        self._events.append(("puback", mid))

    def _on_message(self, client, userdata, message):
        topic = message.topic
        if topic.startswith(self.topic):
            self._events.append(("message", topic[len(self.topic):], bytes(message.payload),
                                 message.mid, message.qos, client, bool(message.dup)))
        elif message.qos:
            client.ack(message.mid, message.qos)      # not ours to handle: never redeliver

    def _ack_down(self, mid, qos, client):
        """PUBACK a down message once its actions are done (journaled or
        refused).  On a connection lost meanwhile the mid belongs to a dead
        session: the broker redelivers the message instead."""
        if qos and client is self._client and client is not None:
            try:
                client.ack(mid, qos)
            except Exception as exc:      # a dying socket: the broker redelivers
                self.log("sync_down_ack_failed", level="warning", error=str(exc))

    def _connect(self):
        cfg = self.mqtt
        try:
            if self._client is None:
                self._client = self._make_client()
            self._client.connect(cfg["host"], int(cfg.get("port", 8883)),
                                 keepalive=int(cfg.get("keepalive", 30)), clean_start=False,
                                 properties=self._connect_props)
            set_nodelay(self._client)
        except Exception as exc:
            cause = describe_connect_error(exc)
            self.log("sync_connect_failed", level="warning", cause=cause)
            self._drop(cause)

    def _subscribe(self):
        self._client.subscribe([(self.topic + "acks", 1), (self.topic + "config", 1)])

    def _publish(self, topic, payload, token, retain):
        if self._client is None:
            return
        if topic == "status" and self.status_extra is not None:
            try:
                extra = dict(self.status_extra())
                # When this connection began: a new value tells the backend we
                # (re)connected and our broker session may be gone (SPEC 7.8.7).
                extra["online_since"] = self._online_since
                payload = msgs.encode_status(self.device_id, "online", now_ms(),
                                             dict(_cbor_safe(extra), c=self.counters()))
            except Exception as exc:   # the plain status still goes up
                self.log("status_extra_failed", level="error", error=str(exc))
                payload = payload or msgs.encode_status(self.device_id, "online", now_ms())
        elif topic == "status":
            payload = msgs.encode_status(self.device_id, "online", now_ms(), {"c": self.counters()})
        info = self._client.publish(self.topic + topic, payload, qos=1, retain=retain)
        self._mids[info.mid] = token
        self._mid_topics[info.mid] = topic

    def _drop(self, cause):
        self._disconnect()
        self._mids = {}
        self._mid_topics = {}
        self._perform(self.core.lost(now_ms(), random.random(), cause))

    def _disconnect(self):
        client, self._client = self._client, None
        if client is not None:
            try:
                client.disconnect()
            except Exception:
                pass
            try:
                sock = client.socket()
                if sock is not None:
                    sock.close()
            except Exception:
                pass

    # -- health ---------------------------------------------------------------------------

    def counters(self):
        """The few sync counters the retained status carries (SPEC 6.2), for
        the fleet view: a snapshot at connect and at each alert change."""
        h = self.core.health()
        return {k: h[k] for k in ("acked", "backlog", "published", "rejected", "reconnects")}

    def health(self):
        out = self.core.health()
        out["device"] = self.device_id
        out["failed"] = self.failed
        out["settle_n"] = self.settle_n
        out["stalled"] = self.stall.state()
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
        write_json_atomic(self.status_file, self.health())


def device_client(cfg, device_id, topic):
    """A paho MQTT 5 client for the device: TLS client certificate, manual
    acks, the retained `offline` status as its last will (SPEC 6.2)."""
    import paho.mqtt.client as mqtt
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cfg.get("client_id") or device_id,
                         protocol=mqtt.MQTTv5, manual_ack=True)
    if cfg.get("tls", True):
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cfg["ca"])
        context.load_cert_chain(cfg["cert"], cfg["key"])
        client.tls_set_context(context)
    client.will_set(topic + "status", msgs.encode_status(device_id, "offline", 0), qos=1, retain=True)
    return client


def puback_ok(reason):
    """A PUBACK reason code that means the broker accepted the message:
    0x00 success or 0x10 no matching subscribers (MQTT 5, 3.4.2.1)."""
    value = getattr(reason, "value", reason)
    try:
        value = int(value)
    except (TypeError, ValueError):
        return not getattr(reason, "is_failure", False)
    return value < 0x80


def set_nodelay(client):
    """Small publishes and acks must not wait for Nagle (paho leaves it on)."""
    try:
        sock = client.socket()
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


def write_json_atomic(path, obj):
    atomic_write(path, json.dumps(obj, sort_keys=True), durable=False)


def _cbor_safe(value):
    if isinstance(value, dict):
        return {str(k): _cbor_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_cbor_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        return value
    if isinstance(value, int):
        return value if -2 ** 63 <= value < 2 ** 64 else str(value)
    return str(value)
