"""Thousands of paho MQTT clients on one asyncio loop (paho's external-loop API).

Why paho directly and not aiomqtt: paho's threaded loop is one thread per
client (10,000 threads), and aiomqtt, which wraps the same paho client,
adds a task, a message queue and futures per client and hides the socket
callbacks we need; the agent already drives paho this way
(agent/mqtt_link.py).  Here each client's socket is registered with the
event loop (add_reader / add_writer on paho's on_socket_* callbacks) and
loop_read / loop_write / loop_misc are called when it is ready, so one
thread serves every client and paho's callbacks only hand events to the
terminal's sans-IO core.

The blocking part of paho's connect() (TCP connect and TLS handshake) runs
in a small thread pool, a bounded number at a time, so a reconnect storm
of 10,000 terminals does not stall the loop; everything after the
handshake runs on the loop thread.
"""

import asyncio
import concurrent.futures
import random
import ssl
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from daozhang.agent.core.sync import sync_messages as msgs, topics
from daozhang.mqtt_tls import paho_client, set_nodelay, tls_context



def now_ms():
    return time.time_ns() // 1000000


class Link:
    """One terminal's MQTT client, driven by the pool."""

    __slots__ = ("terminal", "client", "mids", "sock", "online", "connecting", "tls")

    def __init__(self, terminal):
        self.terminal = terminal
        self.client = None
        self.mids = {}          # paho mid -> core token
        self.sock = None
        self.online = False
        self.connecting = False
        self.tls = None         # its SSLContext, made once (about 3 ms of OpenSSL work)


class MqttPool:
    def __init__(self, loop, broker, ca, connect_concurrency=16, keepalive=60):
        self.loop = loop
        self.broker = broker            # (host, port)
        self.ca = ca
        self.keepalive = keepalive
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=connect_concurrency,
                                                              thread_name_prefix="mqtt-connect")
        self.gate = asyncio.Semaphore(connect_concurrency)
        self.links = {}
        self.loop_thread = threading.get_ident()
        self.dirty = set()              # links whose core has work: stepped soon
        self._step_scheduled = False
        self.connect_failures = 0
        self.connects = 0
        self.published = 0
        self.publish_failures = 0
        self.closing = False
        self.connected_s = None         # seconds until every terminal had connected once

    # -- the terminal's actions ------------------------------------------------

    def add(self, terminal):
        link = Link(terminal)
        self.links[terminal.device_id] = link
        self.mark(link)
        return link

    def mark(self, link):
        self.dirty.add(link)
        if not self._step_scheduled:
            self._step_scheduled = True
            self.loop.call_soon(self._step_dirty)

    def _step_dirty(self):
        self._step_scheduled = False
        dirty, self.dirty = self.dirty, set()
        now = now_ms()
        for link in dirty:
            self.perform(link, link.terminal.step(now))

    def perform(self, link, actions):
        for action in actions:
            if action[0] == "connect":
                if not link.connecting and not self.closing:
                    link.connecting = True
                    self.loop.create_task(self._connect(link))
            elif action[0] == "publish":
                self._publish(link, action[1], action[2], action[3], action[4])

    def _publish(self, link, leaf, payload, token, retain):
        client = link.client
        if client is None or not link.online:
            return
        info = client.publish(topics.device_topic(link.terminal.device_id, leaf), payload, qos=1,
                              retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.publish_failures += 1
            return
        if token is not None:
            link.mids[info.mid] = token
        self.published += 1

    # -- connecting ---------------------------------------------------------------

    def _client(self, link):
        device_id = link.terminal.device_id
        if link.tls is None:
            link.tls = tls_context(self.ca, link.terminal.identity.tls_pem)
        client = paho_client(device_id, link.tls)
        client.max_inflight_messages_set(20)
        client.max_queued_messages_set(0)
        client.on_socket_register_write = lambda c, u, s: self._threadsafe(self._want_write, link, s)
        client.on_socket_unregister_write = lambda c, u, s: self._threadsafe(self._no_write, s)
        client.on_socket_close = lambda c, u, s: self._threadsafe(self._closed, s)
        client.on_connect = lambda c, u, f, rc, p: self._on_connect(link, rc)
        client.on_disconnect = lambda c, u, f, rc, p: self._on_disconnect(link, str(rc))
        client.on_publish = lambda c, u, mid, rc, p: self._on_publish(link, mid)
        client.on_message = lambda c, u, m: self._on_message(link, m)
        # Status "offline" as the will, as the agent does (SPEC 6.3).
        client.will_set(topics.device_topic(device_id, topics.STATUS), msgs.encode_status(device_id, "offline", 0),
                        qos=1, retain=True)
        return client

    def _threadsafe(self, fn, *args):
        if threading.get_ident() == self.loop_thread:
            fn(*args)
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    async def _connect(self, link):
        async with self.gate:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0

            def blocking_part():
                # The SSLContext, TCP connect and TLS handshake: off the loop thread.
                client = self._client(link)
                client.connect(self.broker[0], self.broker[1], keepalive=self.keepalive,
                               clean_start=True, properties=props)
                return client
            try:
                client = link.client = await self.loop.run_in_executor(self.executor, blocking_part)
            except (OSError, ssl.SSLError, ValueError) as exc:
                self.connect_failures += 1
                link.connecting = False
                link.client = None
                self.perform(link, link.terminal.lost(now_ms(), random.random(),
                                                      "connect: %s" % exc))
                self.mark(link)
                return
        sock = link.sock = client.socket()
        self.loop.add_reader(sock, self._readable, link)
        if client.want_write():
            self._want_write(link, sock)

    def _want_write(self, link, sock):
        if sock is not None and sock.fileno() >= 0:
            self.loop.add_writer(sock, self._writable, link)

    def _no_write(self, sock):
        if sock is not None and sock.fileno() >= 0:
            self.loop.remove_writer(sock)

    def _closed(self, sock):
        if sock is not None and sock.fileno() >= 0:
            self.loop.remove_reader(sock)
            self.loop.remove_writer(sock)

    def _readable(self, link):
        client = link.client
        if client is None:
            return
        client.loop_read()
        sock = client.socket()
        while sock is not None and hasattr(sock, "pending") and sock.pending():
            client.loop_read()     # TLS records already buffered: no readiness event for them
            sock = client.socket()

    def _writable(self, link):
        if link.client is not None:
            link.client.loop_write()

    # -- paho callbacks (on the loop thread) ---------------------------------------

    def _on_connect(self, link, rc):
        link.connecting = False
        if rc.is_failure:
            self.connect_failures += 1
            return
        self.connects += 1
        link.online = True
        if link.client is not None:
            set_nodelay(link.client)     # as the agent: no Nagle delay on small messages
        link.client.subscribe(topics.device_topic(link.terminal.device_id, topics.ACKS), qos=1)
        self.perform(link, link.terminal.connected(now_ms()))
        self.mark(link)

    def _on_disconnect(self, link, cause):
        was_online = link.online
        link.online = False
        link.connecting = False
        link.mids.clear()
        link.client = None
        if link.sock is not None:
            self._closed(link.sock)
            link.sock = None
        if was_online or link.terminal.core.state != "offline":
            self.perform(link, link.terminal.lost(now_ms(), random.random(), cause))
        self.mark(link)

    def _on_publish(self, link, mid):
        token = link.mids.pop(mid, None)
        if token is not None:
            self.perform(link, link.terminal.puback(token, now_ms()))
            self.mark(link)

    def _on_message(self, link, message):
        leaf = message.topic.rsplit("/", 1)[-1]
        self.perform(link, link.terminal.down_message(leaf, bytes(message.payload), now_ms()))
        self.mark(link)

    # -- upkeep ---------------------------------------------------------------------------

    def tick(self, share, of):
        """Keepalive pings and the core's timers for one slice of the links."""
        now = now_ms()
        for link in list(self.links.values())[share::of]:
            if link.client is not None and link.online:
                link.client.loop_misc()
                if link.terminal.status_due(now):
                    self._publish(link, "status", link.terminal.status_payload(now), None, True)
            self.perform(link, link.terminal.step(now))

    def close(self):
        """A clean stop: each terminal's last status ("offline", its final
        counters) goes out retained, then DISCONNECT (so no will)."""
        self.closing = True
        now = now_ms()
        for link in self.links.values():
            if link.client is not None:
                try:
                    if link.online:
                        link.client.publish(topics.device_topic(link.terminal.device_id, topics.STATUS),
                                            link.terminal.status_payload(now, "offline"), qos=1,
                                            retain=True)
                    link.client.disconnect()
                    link.client.loop_write()
                except Exception:
                    pass
                if link.sock is not None:
                    self._closed(link.sock)
        self.executor.shutdown(wait=False, cancel_futures=True)
