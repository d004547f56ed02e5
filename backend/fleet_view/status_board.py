"""Which terminals are online: the devices' retained status messages.

A terminal publishes a retained `daozhang/v1/<dev>/status` ("online" with
its counters) when it connects, and the broker publishes its will
("offline") when the connection dies without a goodbye.  The fleet view
subscribes (plain, not the workers' shared subscription: every status,
once per view) with the backend's identity, which the ACL lets read
`daozhang/v1/+/status`; retained messages give the whole fleet's state at
start.  Memory: one small tuple per device.
"""

import threading
import time
import uuid

from daozhang.agent.core import cbor
from daozhang.agent.core.errors import DecodeError
from daozhang.agent.core.sync import topics
from daozhang.mqtt_tls import paho_client


class StatusBoard:
    def __init__(self, broker, log=None):
        self.broker = broker
        self.log = log or (lambda event, level="info", **kw: None)
        self._lock = threading.Lock()
        self._states = {}       # device -> (state, received_at_ms, counters)
        self.client = None

    def snapshot(self):
        with self._lock:
            return dict(self._states)

    def update(self, device_id, payload, now_ms, retained=False):
        """One status message (CBOR, SPEC 6.3); malformed ones are ignored.
        A retained one was sent before we subscribed: it was heard at its
        own `at` (the will's `at` is 0: heard at an unknown time)."""
        try:
            msg = cbor.loads(payload) if payload else {}
        except DecodeError:
            return
        if not isinstance(msg, dict):
            return
        state = msg.get("state") if isinstance(msg.get("state"), str) else "unknown"
        counters = msg.get("c") if isinstance(msg.get("c"), dict) else {}
        if retained:
            at = msg.get("at")
            now_ms = at if isinstance(at, int) and 0 < at <= now_ms else None
        with self._lock:
            self._states[device_id] = (state, now_ms, counters)

    def start(self):
        broker = self.broker
        client = paho_client("fleet-view-%s" % uuid.uuid4().hex[:12], broker)
        client.reconnect_delay_set(0.5, 10)

        def on_connect(c, u, flags, rc, props):
            if rc.is_failure:
                self.log("fleet_view_broker_refused", level="error", cause=str(rc))
                return
            c.subscribe(topics.every_device(topics.STATUS), qos=0)

        def on_message(c, u, m):
            device_id, leaf = topics.parse(m.topic)
            if leaf == topics.STATUS:
                self.update(device_id, bytes(m.payload), time.time_ns() // 1000000, bool(m.retain))

        client.on_connect = on_connect
        client.on_message = on_message
        client.connect_async(broker["host"], int(broker["port"]), keepalive=30)
        client.loop_start()
        self.client = client
        return self

    def stop(self):
        if self.client is not None:
            self.client.loop_stop()
            self.client.disconnect()
