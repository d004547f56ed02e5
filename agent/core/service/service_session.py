"""The device side of the USB service port: one session's state machine.

Sans-IO and portable (docs/SPEC.md §8, "Session states").  The adapter feeds
bytes with `receive_data(data, now)` and writes back what it returns; it calls
`on_silence(now)` when the line has been quiet with a frame half-received, and
`reset()` when it knows the link went away.  Everything from outside is an
input: the journal reader, the clock, the random source, the signature check,
the enrolled technician keys and the info/alerts/health callbacks.

Read-only by construction: `journal` is only ever asked to `read`, and no
command has a write path.  Unauthenticated, only `info` (and the two steps of
authentication) answer.
"""

import hashlib

from daozhang.agent.core import card_data
from daozhang.agent.core.errors import LocalError
from daozhang.agent.core.service.service_frames import (ERROR, MAX_PAYLOAD, NAK, NEED_DATA, PAYLOAD, REQUEST, RESPONSE,
                                                        BadFrame, Frame, FrameCodec)

PROTOCOL_VERSION = 1
SUPERBLOCK_SIZE = 4096
NONCE_SIZE = 32
TOKEN_SIZE = 16
AUTH_DOMAIN = b"daozhang/usb-auth/v1"
DEFAULT_IDLE_TIMEOUT = 120
_HASH_BLOCK = 16384

UNAUTHENTICATED = "unauthenticated"
CHALLENGE_ISSUED = "challenge_issued"
AUTHENTICATED = "authenticated"
STATES = (UNAUTHENTICATED, CHALLENGE_ISSUED, AUTHENTICATED)

# Outcomes that are not command names: the two ends of `auth`, and the
# session being dropped (link reset, idle timeout).
AUTH_OK = "auth_ok"
AUTH_FAILED = "auth_failed"
DROP = "drop"
# Stands for the answer to `auth` where the last answer is kept for resending.
_TOKEN_ANSWER = object()

# (state, command or outcome) -> next state.  A pair missing from the table
# is refused with `auth_required` (or `no_challenge` for `auth`) and leaves
# the state unchanged.
TRANSITIONS = {
    (UNAUTHENTICATED, "info"): UNAUTHENTICATED,
    (UNAUTHENTICATED, "auth_begin"): CHALLENGE_ISSUED,
    (UNAUTHENTICATED, DROP): UNAUTHENTICATED,
    (CHALLENGE_ISSUED, "info"): CHALLENGE_ISSUED,
    (CHALLENGE_ISSUED, "auth_begin"): CHALLENGE_ISSUED,
    (CHALLENGE_ISSUED, AUTH_OK): AUTHENTICATED,
    (CHALLENGE_ISSUED, AUTH_FAILED): UNAUTHENTICATED,
    (CHALLENGE_ISSUED, DROP): UNAUTHENTICATED,
    (AUTHENTICATED, "info"): AUTHENTICATED,
    (AUTHENTICATED, "read"): AUTHENTICATED,
    (AUTHENTICATED, "segment"): AUTHENTICATED,
    (AUTHENTICATED, "alerts"): AUTHENTICATED,
    (AUTHENTICATED, "health"): AUTHENTICATED,
    (AUTHENTICATED, "auth_begin"): CHALLENGE_ISSUED,
    (AUTHENTICATED, "close"): UNAUTHENTICATED,
    (AUTHENTICATED, DROP): UNAUTHENTICATED,
}

COMMANDS = ("info", "auth_begin", "auth", "read", "segment", "alerts", "health", "close")
# Commands that must carry the session token returned by `auth`.
TOKEN_COMMANDS = ("read", "segment", "alerts", "health", "close")


def auth_message(device_id, nonce):
    """The bytes a technician signs (SPEC 8.6)."""
    return AUTH_DOMAIN + device_id.encode("utf-8") + bytes(nonce)


def cbor_safe(value):
    """A live view (alerts, health) made fit for an answer: maps, lists,
    text, ints, bytes, bool and None only; deterministic CBOR has no floats
    (SPEC 2), so a float becomes text with three decimals."""
    if isinstance(value, dict):
        return {str(k): cbor_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [cbor_safe(v) for v in value]
    if isinstance(value, float):
        return "%.3f" % value
    if value is None or isinstance(value, (bool, int, str, bytes)):
        return value
    return str(value)


def _same_bytes(a, b):
    # Constant time in the length of `a`: the token must not leak by timing.
    if not isinstance(a, (bytes, bytearray)) or not isinstance(b, (bytes, bytearray)):
        return False
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


def _holds_card_data(value, depth):
    """True when any text key or value (maps and lists followed 4 deep)
    is card data by the one rule (card_data, SPEC 4.4)."""
    if isinstance(value, str):
        return card_data.card_data_code(value) is not None
    if depth >= 4:
        return False
    if isinstance(value, dict):
        for key in value:
            if _holds_card_data(key, depth + 1) or _holds_card_data(value[key], depth + 1):
                return True
    elif isinstance(value, (list, tuple)):
        for item in value:
            if _holds_card_data(item, depth + 1):
                return True
    return False


class _Refused(Exception):
    """A request answered with an ERROR frame (internal control flow)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class DeviceSession:
    """One end of the service port, device side.

    journal: object with `size`, `segment_size`, `segment_count` and
      `read(offset, length) -> bytes` (OSError on failure).
    verify_signature(pubkey32, message, signature64) -> bool (SyncCore's order).
    technician_keys: iterable of 32-byte Ed25519 public keys.
    random_bytes(n) -> n random bytes.
    callbacks: {"info": f() -> map, "alerts": f() -> list, "health": f() -> map}.
    """

    def __init__(self, device_id, journal, verify_signature, technician_keys, random_bytes,
                 callbacks=None, max_payload=MAX_PAYLOAD, max_chunk=None,
                 idle_timeout=DEFAULT_IDLE_TIMEOUT):
        if not isinstance(device_id, str) or not device_id:
            raise LocalError("device_id must be a non-empty str, got %r" % (device_id,))
        self.device_id = device_id
        self.journal = journal
        self.verify_signature = verify_signature
        self.technician_keys = [bytes(k) for k in technician_keys]
        for key in self.technician_keys:
            if len(key) != 32:
                raise LocalError("technician key must be 32 bytes, got %d" % len(key))
        self.random_bytes = random_bytes
        self.callbacks = callbacks or {}
        self.codec = FrameCodec(max_payload)
        # Room for the map around the data: keys, offsets, a 32-byte hash.
        self.max_chunk = max_chunk or (max_payload - 256)
        if self.max_chunk > max_payload - 256:
            raise LocalError("max_chunk %d leaves no room in a %d-byte payload" % (self.max_chunk, max_payload))
        self.idle_timeout = idle_timeout
        self.state = UNAUTHENTICATED
        self.counters = {"frames": 0, "bad_frames": 0, "naks_sent": 0, "resends": 0,
                         "tokens_withheld": 0}
        self._nonce = None
        self._token = None
        self._last_good = None
        self._last_seq = 0
        self._last_request = None
        self._last_answer = None
        self._segment_hashes = {}

    # -- the adapter's verbs ---------------------------------------------

    def receive_data(self, data, now):
        """Feed bytes from the port; returns the bytes to write back."""
        self._expire(now)
        out = []
        view = bytes(data)
        step = self.codec.max_frame
        for start in range(0, len(view), step):
            self.codec.receive_data(view[start:start + step])
            self._drain(now, out)
        if not view:
            self._drain(now, out)
        return b"".join(out)

    def on_silence(self, now):
        """The line went quiet with a partial frame held: drop it and NAK."""
        self._expire(now)
        bad = self.codec.discard_partial()
        if bad is None:
            return b""
        return self._nak(bad)

    def reset(self):
        """The link went away: whoever comes next must authenticate."""
        self._transition(DROP)
        self.codec.discard_partial()
        self._last_request = None
        self._last_answer = None

    # -- internals -----------------------------------------------------------

    def _expire(self, now):
        if self.state != UNAUTHENTICATED and self._last_good is not None:
            if now - self._last_good >= self.idle_timeout:
                self.reset()

    def _drain(self, now, out):
        while True:
            event = self.codec.next_event()
            if event is NEED_DATA:
                return
            if isinstance(event, BadFrame):
                if event.reason == PAYLOAD and event.type == REQUEST:
                    self._last_good = now
                    answer = Frame(ERROR, event.seq, {"code": "bad_request",
                                                      "message": "payload is not a canonical CBOR map"})
                    out.append(self._remember(None, event.seq, answer))
                else:
                    out.append(self._nak(event))
                continue
            self.counters["frames"] += 1
            self._last_good = now
            out.append(self._on_frame(event))

    def _nak(self, bad):
        self.counters["bad_frames"] += 1
        self.counters["naks_sent"] += 1
        return self.codec.send(Frame(NAK, self._last_seq, {"reason": bad.reason}))

    def _on_frame(self, frame):
        if frame.type == NAK:
            if self._last_answer is None:
                return b""
            return self._resend()
        if frame.type != REQUEST:
            answer = Frame(ERROR, frame.seq, {"code": "bad_request",
                                              "message": "device accepts REQUEST (1) and NAK (4) frames, got type %d" % frame.type})
            return self.codec.send(answer)
        if (self._last_answer is not None and frame.seq == self._last_seq
                and frame.payload == self._last_request):
            return self._resend()
        return self._remember(frame.payload, frame.seq, self._answer(frame))

    def _resend(self):
        """The last answer again, byte for byte; except the answer to `auth`,
        which carries the session token: anyone on the link can send a NAK
        or replay a request, so the token travels only in the answer it was
        issued in.  Asking again ends the session (the token is void: who
        lost the answer never had it) and says to authenticate again."""
        if self._last_answer is _TOKEN_ANSWER:
            self.counters["tokens_withheld"] += 1
            if self.state == AUTHENTICATED:
                self._transition(DROP)
            seq = self._last_seq
            self._last_request = None
            self._last_answer = None
            return self.codec.send(Frame(ERROR, seq, {
                "code": "auth_not_resent",
                "message": "the answer to auth is never resent; run auth_begin and auth again"}))
        self.counters["resends"] += 1
        return self._last_answer

    def _remember(self, request, seq, answer):
        data = self.codec.send(answer)
        self._last_seq = seq
        self._last_request = request
        carries_token = (answer.type == RESPONSE and self._token is not None
                         and answer.payload.get("session") is self._token)
        self._last_answer = _TOKEN_ANSWER if carries_token else data
        return data

    def _transition(self, outcome):
        key = (self.state, outcome)
        if key not in TRANSITIONS:
            raise LocalError("no transition from %s on %s" % key)
        new_state = TRANSITIONS[key]
        if new_state != AUTHENTICATED:
            self._token = None
        if new_state == UNAUTHENTICATED:
            self._nonce = None
            self._segment_hashes = {}
        self.state = new_state

    def _answer(self, frame):
        try:
            return Frame(RESPONSE, frame.seq, self._command(frame.payload))
        except _Refused as exc:
            return Frame(ERROR, frame.seq, {"code": exc.code, "message": exc.message})

    def _command(self, request):
        if _holds_card_data(request, 0):
            # Before any message that could echo a value back (and into the
            # laptop's output or logs).
            raise _Refused("pan_refused", "a request field holds card data; it is refused")
        cmd = request.get("cmd")
        if not isinstance(cmd, str):
            raise _Refused("bad_request", "request needs \"cmd\" as text")
        if cmd not in COMMANDS:
            raise _Refused("unknown_command", "unknown command %r; known: %s" % (cmd, ", ".join(COMMANDS)))
        if cmd == "auth":
            return self._auth(request)
        if (self.state, cmd) not in TRANSITIONS:
            raise _Refused("auth_required", "%s needs an authenticated session (state: %s)" % (cmd, self.state))
        if cmd in TOKEN_COMMANDS and not _same_bytes(request.get("session"), self._token):
            raise _Refused("auth_required", "%s needs the session token from auth" % cmd)
        result = getattr(self, "_cmd_" + cmd)(request)
        self._transition(cmd)
        return result

    # -- commands --------------------------------------------------------------

    def _cmd_info(self, request):
        answer = {}
        info = self.callbacks.get("info")
        if info is not None:
            try:
                extra = info()
                if isinstance(extra, dict):
                    answer.update(extra)
            except Exception as exc:  # the port must answer info even if the agent cannot
                answer["unavailable"] = str(exc) or exc.__class__.__name__
        answer.update({
            "protocol": PROTOCOL_VERSION,
            "device_id": self.device_id,
            "journal_size": self.journal.size,
            "segment_size": self.journal.segment_size,
            "segment_count": self.journal.segment_count,
            "superblock_size": SUPERBLOCK_SIZE,
            "max_chunk": self.max_chunk,
        })
        return answer

    def _cmd_auth_begin(self, request):
        nonce = bytes(self.random_bytes(NONCE_SIZE))
        if len(nonce) != NONCE_SIZE:
            raise LocalError("random source gave %d bytes, wanted %d" % (len(nonce), NONCE_SIZE))
        self._nonce = nonce
        return {"device_id": self.device_id, "nonce": nonce}

    def _auth(self, request):
        if self.state != CHALLENGE_ISSUED or self._nonce is None:
            raise _Refused("no_challenge", "auth needs auth_begin first (state: %s)" % self.state)
        pubkey = request.get("pubkey")
        signature = request.get("signature")
        nonce = self._nonce
        self._nonce = None  # spent whatever happens next
        ok = False
        if (isinstance(pubkey, bytes) and len(pubkey) == 32 and isinstance(signature, bytes)
                and len(signature) == 64):
            if any(_same_bytes(pubkey, key) for key in self.technician_keys):
                try:
                    ok = bool(self.verify_signature(pubkey, auth_message(self.device_id, nonce), signature))
                except Exception:  # an injected verifier that raises means "no"
                    ok = False
        if not ok:
            self._transition(AUTH_FAILED)
            raise _Refused("auth_failed", "technician key not enrolled or signature bad")
        self._transition(AUTH_OK)
        self._token = bytes(self.random_bytes(TOKEN_SIZE))
        return {"session": self._token}

    def _uint(self, request, name):
        value = request.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _Refused("bad_request", "%s must be a non-negative integer, got %r" % (name, value))
        return value

    def _length(self, request):
        length = self._uint(request, "length")
        if length > self.max_chunk:
            raise _Refused("too_large", "length %d > max_chunk %d" % (length, self.max_chunk))
        return length

    def _read(self, offset, length):
        try:
            data = self.journal.read(offset, length)
        except OSError as exc:
            raise _Refused("io_error", "reading journal at %d: %s" % (offset, exc))
        if len(data) != length:
            raise _Refused("io_error", "journal read at %d gave %d bytes, wanted %d" % (offset, len(data), length))
        return bytes(data)

    def _cmd_read(self, request):
        offset = self._uint(request, "offset")
        length = self._length(request)
        size = self.journal.size
        if offset > size:
            raise _Refused("out_of_range", "offset %d > journal size %d" % (offset, size))
        length = min(length, size - offset)
        return {"offset": offset, "data": self._read(offset, length)}

    def _cmd_segment(self, request):
        index = self._uint(request, "index")
        offset = self._uint(request, "offset")
        length = self._length(request)
        seg_size = self.journal.segment_size
        if index >= self.journal.segment_count:
            raise _Refused("out_of_range", "segment %d >= segment_count %d" % (index, self.journal.segment_count))
        if offset > seg_size:
            raise _Refused("out_of_range", "offset %d > segment_size %d" % (offset, seg_size))
        base = SUPERBLOCK_SIZE + index * seg_size
        if offset == 0 or index not in self._segment_hashes:
            self._segment_hashes[index] = self._hash_range(base, seg_size)
        length = min(length, seg_size - offset)
        return {"index": index, "offset": offset, "data": self._read(base + offset, length),
                "sha256": self._segment_hashes[index], "segment_size": seg_size}

    def _hash_range(self, base, size):
        digest = hashlib.sha256()
        done = 0
        while done < size:
            n = min(_HASH_BLOCK, size - done)
            digest.update(self._read(base + done, n))
            done += n
        return digest.digest()

    def _callback(self, name):
        fn = self.callbacks.get(name)
        if fn is None:
            raise _Refused("unavailable", "this device does not report %s" % name)
        try:
            return fn()
        except Exception as exc:  # an agent fault must not take the port down
            raise _Refused("unavailable", "%s failed: %s" % (name, str(exc) or exc.__class__.__name__))

    def _cmd_alerts(self, request):
        alerts = self._callback("alerts")
        return {"alerts": list(alerts)}

    def _cmd_health(self, request):
        health = self._callback("health")
        if not isinstance(health, dict):
            raise _Refused("unavailable", "health is not a map")
        return health

    def _cmd_close(self, request):
        return {}
