"""A paho MQTT 5 client wrapped for tests: every wait is on an event or a
queue with a timeout, never a sleep.

    probe = broker.connect("dev-a")               # see dztest.broker
    probe.subscribe("daozhang/v1/dev-a/acks")     # -> SUBACK reason codes
    probe.publish(topic, b"...")                  # -> PUBACK reason code (0x87: denied)
    msg = probe.next_message(timeout=10)
"""

import queue
import ssl
import threading
import time


class BrokerFailed(AssertionError):
    """mosquitto did not start, exited, or refused what a test needed."""


class ConnectOutcome:
    def __init__(self, connected, detail):
        self.connected = connected
        self.detail = detail

    def __repr__(self):
        return "ConnectOutcome(connected=%r, detail=%r)" % (self.connected, self.detail)


class MqttProbe:
    """A paho client wrapped for tests: every wait is on an event or a queue
    with a timeout.  Received messages go to `messages` (a queue.Queue of
    paho MQTTMessage)."""

    def __init__(self, client, clean_start=True, session_expiry=None):
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.client = client
        self._clean_start = clean_start
        self._properties = None
        if session_expiry is not None:
            self._properties = Properties(PacketTypes.CONNECT)
            self._properties.SessionExpiryInterval = session_expiry
        self.messages = queue.Queue()
        self._lock = threading.Lock()
        self._events = queue.Queue()  # ("connect", rc) / ("disconnect", rc) / ("fail", None)
        self._acks = {}               # mid -> threading.Event
        self._results = {}            # mid -> reason code(s)
        self._started = False
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = lambda c, u, msg: self.messages.put(msg)
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self._events.put(("connect", reason_code))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self._events.put(("disconnect", reason_code))

    def _on_connect_fail(self, client, userdata):
        self._events.put(("fail", None))

    def _done(self, mid, result):
        with self._lock:
            self._results[mid] = result
            event = self._acks.setdefault(mid, threading.Event())
        event.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self._done(mid, [int(rc.value) if hasattr(rc, "value") else int(rc) for rc in reason_codes])

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        self._done(mid, int(reason_code.value) if hasattr(reason_code, "value") else int(reason_code))

    def _wait(self, mid, timeout, what):
        with self._lock:
            event = self._acks.setdefault(mid, threading.Event())
        if not event.wait(timeout):
            raise TimeoutError("no %s for mid %d within %ss" % (what, mid, timeout))
        with self._lock:
            self._acks.pop(mid, None)
            return self._results.pop(mid)

    def open(self, host, port, timeout=10):
        try:
            self.client.connect(host, port, keepalive=30, clean_start=self._clean_start,
                                properties=self._properties)
        except (ssl.SSLError, OSError) as exc:
            return ConnectOutcome(False, "%s: %s" % (type(exc).__name__, exc))
        # Drive the network loop ourselves until CONNACK or a close: a
        # refused client then never starts paho's thread (whose reconnect
        # backoff would hold up loop_stop by a second).
        deadline = time.monotonic() + timeout
        while self._events.empty() and time.monotonic() < deadline:
            try:
                self.client.loop(timeout=0.05)
            except (ssl.SSLError, OSError) as exc:
                return ConnectOutcome(False, "%s: %s" % (type(exc).__name__, exc))
        try:
            kind, rc = self._events.get_nowait()
        except queue.Empty:
            return ConnectOutcome(False, "no CONNACK within %ss" % timeout)
        if kind == "connect" and not rc.is_failure:
            self.client.loop_start()
            self._started = True
            return ConnectOutcome(True, str(rc))
        return ConnectOutcome(False, "%s: %s" % (kind, rc))

    def subscribe(self, topic, qos=1, timeout=10):
        """Subscribe and wait for SUBACK; returns its reason codes (ints)."""
        rc, mid = self.client.subscribe(topic, qos)
        if rc != 0:
            raise BrokerFailed("subscribe %r not sent: rc %d" % (topic, rc))
        return self._wait(mid, timeout, "SUBACK")

    def publish(self, topic, payload, qos=1, retain=False, timeout=10, properties=None):
        """Publish; for QoS >= 1 wait for the PUBACK and return its reason code."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc != 0:
            raise BrokerFailed("publish to %r not sent: rc %d" % (topic, info.rc))
        if qos == 0:
            return 0
        return self._wait(info.mid, timeout, "PUBACK")

    def next_message(self, timeout=10):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("no message within %ss" % timeout)

    def messages_until(self, predicate, timeout=10):
        """Collect messages until one satisfies `predicate` (included last)."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.next_message(max(0.0, deadline - time.monotonic()))
            seen.append(msg)
            if predicate(msg):
                return seen

    def close(self):
        try:
            self.client.disconnect()
        except Exception:
            pass
        if self._started:
            self.client.loop_stop()
            self._started = False
