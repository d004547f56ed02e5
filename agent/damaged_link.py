"""The MQTT link of an agent whose journal refused to open (SPEC 3.9, 6.2).

MqttLink (agent/mqtt_link.py) is built around a readable journal: its sync
core reads frames, checks acks against journal hashes and moves cursors.
None of that is possible on a journal that refuses to open, yet the backend
must learn of the damage without waiting for a technician.  This degraded
link does only the up half that needs no journal:

- the retained `status` ("online", with `"journal": "damaged"`), and the
  usual `offline` last will;
- every alert the daemon raises (the start-up `journal_damaged`), on the
  `alerts` topic, sent at each connect and again every `resend_s` while
  connected: a message published while no backend worker is subscribed is
  dropped by the broker, and the backend stores an alert without a `seq`
  once per (device, kind, state, `at`), so resends are harmless.

It reads no backlog and acknowledges no down message: it resumes the
device's persistent session (clean_start False) and never PUBACKs what the
broker delivers, so acks and settlement acks queued for the device are
redelivered to the full link once the journal is repaired.  paho's own
threaded loop and reconnect are used: there is no protocol state here
worth a sans-IO core.
"""

import threading
import time

from daozhang.agent.core.sync import sync_messages as msgs, topics
from daozhang.agent.core.sync.sync_alerts import one_alert
from daozhang.agent.mqtt_link import SESSION_EXPIRY_S, device_client

RESEND_S = 60.0


def now_ms():
    return time.time_ns() // 1000000


class DamagedJournalLink:
    """start(), stop(), alive(), publish_alert(alert)."""

    def __init__(self, device_id, mqtt, log=None, resend_s=RESEND_S):
        self.device_id = device_id
        self.mqtt = mqtt
        self.log = log or (lambda event, level="info", **kw: None)
        self.resend_s = resend_s
        self.topic = topics.device_prefix(device_id)
        self._alerts = []               # encoded `alerts` payloads, all re-sent on each connect
        self._lock = threading.Lock()
        self._connected = False
        self._stop = threading.Event()
        self._client = None
        self._resender = None

    def publish_alert(self, alert):
        """Keep an alert transition (a dict) and send it now if connected."""
        alert = dict(alert)
        alert.setdefault("at", now_ms())    # the backend tells resends apart by it
        payload = one_alert(self.device_id, alert, alert["at"])
        with self._lock:
            self._alerts.append(payload)
            connected = self._connected
        if connected:
            self._send([payload])

    def start(self):
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        cfg = self.mqtt
        client = device_client(cfg, self.device_id, self.topic)
        client.reconnect_delay_set(1, 60)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = int(cfg.get("session_expiry_s", SESSION_EXPIRY_S))
        self._client = client
        client.connect_async(cfg["host"], int(cfg.get("port", 8883)),
                             keepalive=int(cfg.get("keepalive", 30)), clean_start=False,
                             properties=props)
        client.loop_start()
        self._resender = threading.Thread(target=self._resend_loop, name="mqtt-damaged", daemon=True)
        self._resender.start()

    def stop(self, timeout=5.0):
        self._stop.set()
        client, self._client = self._client, None
        if client is not None:
            try:
                client.disconnect()
            finally:
                client.loop_stop()
        if self._resender is not None:
            self._resender.join(timeout)

    def alive(self):
        return True         # the daemon proves nothing else alive on a damaged journal

    # -- paho thread ---------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason, props):
        if reason.is_failure:
            self.log("sync_connect_refused", level="error",
                     cause="auth: broker refused the connection: %s" % reason)
            return
        status = msgs.encode_status(self.device_id, "online", now_ms(), {"journal": "damaged"})
        client.publish(self.topic + "status", status, qos=1, retain=True)
        with self._lock:
            self._connected = True
            alerts = list(self._alerts)
        self.log("sync_connected", mode="journal_damaged", alerts=len(alerts))
        self._send(alerts)

    def _on_disconnect(self, client, userdata, flags, reason, props):
        with self._lock:
            self._connected = False
        if not self._stop.is_set():
            self.log("sync_lost", level="warning", cause=str(reason), mode="journal_damaged")

    def _resend_loop(self):
        while not self._stop.wait(self.resend_s):
            with self._lock:
                alerts = list(self._alerts) if self._connected else []
            self._send(alerts)

    def _send(self, payloads):
        client = self._client
        if client is None:
            return
        for payload in payloads:
            client.publish(self.topic + "alerts", payload, qos=1, retain=False)
