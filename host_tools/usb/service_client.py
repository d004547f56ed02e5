"""The laptop's end of the USB service port: requests, retries, NAKs, auth.

`ServiceClient` speaks docs/SPEC.md §8 over a `transport` with two methods,
`read(timeout) -> bytes` (b"" on a quiet line) and `write(bytes)`, both of
which raise `LinkLost` when the link is gone.  One request is outstanding at
a time; a timeout or a NAK re-sends it with the same seq, and answers for any
other seq are stale copies and are ignored.
"""

import os
import time

from cryptography.hazmat.primitives import serialization

from daozhang.agent.core.errors import DaozhangError, LocalError, RemoteError
from daozhang.agent.core.service.service_frames import (ERROR, MAX_PAYLOAD, NAK, NEED_DATA, REQUEST, RESPONSE, BadFrame,
                                                        Frame, FrameCodec)
from daozhang.agent.core.service.service_session import auth_message
from daozhang.serial_port import SerialPort
from daozhang.signing import load_private_key



class LinkLost(DaozhangError):
    """The cable was pulled or the device stopped answering: run again to resume."""
    exit_code = 2


class DeviceRefused(RemoteError):
    """The device answered a request with ERROR; `code` is the spec's error code."""

    def __init__(self, code, message):
        super().__init__("device refused: %s (%s)" % (code, message))
        self.code = code


def load_technician_key(path):
    """The technician's Ed25519 private key (PREFIX.key from `daozhang keys new`)."""
    return load_private_key(path)


class SerialTransport(SerialPort):
    """A serial device path or pyserial URL (/dev/ttyACM0, loop://, ...)."""

    def __init__(self, url, baudrate=115200):
        self.url = url
        super().__init__(url, baudrate, 10, self._link_lost)

    def _link_lost(self, stage, exc):
        if stage == "open":
            return LinkLost("cannot open %s: %s" % (self.url, exc))
        return LinkLost("link to %s lost: %s; run the same command again to resume" % (self.url, exc))


class ServiceClient:
    """Request/response over the service port, with re-sends."""

    def __init__(self, transport, timeout=3.0, tries=5, max_resends=100,
                 max_payload=MAX_PAYLOAD, clock=time.monotonic, first_seq=None):
        self.transport = transport
        self.timeout = timeout
        self.tries = tries
        self.max_resends = max_resends
        self.clock = clock
        self.codec = FrameCodec(max_payload)
        # A random first seq: the device must not take our first request for
        # a re-send of the last one a previous run made.
        self.seq = first_seq if first_seq is not None else int.from_bytes(os.urandom(2), "big")
        self.token = None
        self._unfed = b""
        self.counters = {"requests": 0, "bad_frames": 0, "naks_sent": 0, "naks_received": 0,
                         "resends": 0, "timeouts": 0}

    def request(self, cmd, **args):
        payload = dict(args)
        payload["cmd"] = cmd
        if self.token is not None and cmd not in ("info", "auth_begin", "auth"):
            payload["session"] = self.token
        self.seq = (self.seq + 1) & 0xFFFF
        seq = self.seq
        data = self.codec.send(Frame(REQUEST, seq, payload))
        self.counters["requests"] += 1
        self.transport.write(data)
        tries = 1
        resends = 0
        deadline = self.clock() + self.timeout
        while True:
            event = self.codec.next_event()
            if event is NEED_DATA:
                if self._unfed:
                    self._feed(b"")
                    continue
                chunk = self.transport.read(max(0.0, deadline - self.clock()))
                if chunk:
                    self._feed(chunk)
                    continue
                if self.clock() < deadline:
                    continue
                self.counters["timeouts"] += 1
                if tries >= self.tries:
                    raise LinkLost("no answer to %s after %d tries of %.1f s; check the cable "
                                   "and run the same command again to resume" % (cmd, tries, self.timeout))
                tries += 1
                self.codec.discard_partial()
                self._resend(data)
                deadline = self.clock() + self.timeout
                continue
            if isinstance(event, BadFrame):
                self.counters["bad_frames"] += 1
                if event.seq == seq and event.type in (RESPONSE, ERROR):
                    raise RemoteError("device sent an undecodable answer to %s (CBOR payload)" % cmd)
                self.counters["naks_sent"] += 1
                self.transport.write(self.codec.send(Frame(NAK, seq, {"reason": event.reason})))
                continue
            if event.type == NAK:
                self.counters["naks_received"] += 1
                resends += 1
                if resends > self.max_resends:
                    raise LinkLost("%d NAKs for one request: the link is too noisy" % resends)
                self._resend(data)
                deadline = self.clock() + self.timeout
                continue
            if event.seq != seq:
                continue  # a stale copy of an earlier answer
            if event.type == RESPONSE:
                return event.payload
            if event.type == ERROR:
                raise DeviceRefused(str(event.payload.get("code")), str(event.payload.get("message")))

    def _feed(self, chunk):
        # Fed only when the codec said NEED_DATA (it holds < max_frame), at
        # most max_frame at a time, so its limit of two frames is never hit.
        self._unfed += chunk
        piece = self._unfed[:self.codec.max_frame]
        self._unfed = self._unfed[len(piece):]
        self.codec.receive_data(piece)

    def _resend(self, data):
        self.counters["resends"] += 1
        self.transport.write(data)

    # -- commands -----------------------------------------------------------

    def info(self):
        return self.request("info")

    def authenticate(self, private_key, attempts=3):
        """auth_begin + auth.  The device never resends the answer to auth
        (it carries the token, SPEC 8.4): when that answer is lost, the
        re-sent request gets `auth_not_resent` and we start over."""
        for attempt in range(attempts):
            try:
                return self._authenticate_once(private_key)
            except DeviceRefused as exc:
                if exc.code != "auth_not_resent" or attempt == attempts - 1:
                    raise
        raise LocalError("attempts must be at least 1")

    def _authenticate_once(self, private_key):
        challenge = self.request("auth_begin")
        device_id, nonce = challenge.get("device_id"), challenge.get("nonce")
        if not isinstance(device_id, str) or not isinstance(nonce, bytes) or len(nonce) != 32:
            raise RemoteError("auth_begin answer lacks device_id/32-byte nonce: %r" % (challenge,))
        pubkey = private_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                       serialization.PublicFormat.Raw)
        signature = private_key.sign(auth_message(device_id, nonce))
        answer = self.request("auth", pubkey=pubkey, signature=signature)
        token = answer.get("session")
        if not isinstance(token, bytes):
            raise RemoteError("auth answer lacks a session token: %r" % (answer,))
        self.token = token
        return device_id

    def read(self, offset, length):
        answer = self.request("read", offset=offset, length=length)
        return _bytes_field(answer, "data")

    def segment(self, index, offset, length):
        answer = self.request("segment", index=index, offset=offset, length=length)
        return _bytes_field(answer, "data"), _bytes_field(answer, "sha256")

    def alerts(self):
        return self.request("alerts").get("alerts", [])

    def health(self):
        return self.request("health")

    def close(self):
        if self.token is not None:
            self.request("close")
            self.token = None


def _bytes_field(answer, name):
    value = answer.get(name)
    if not isinstance(value, bytes):
        raise RemoteError("answer lacks bytes field %r: keys %s" % (name, sorted(answer)))
    return value
