"""Settlement acks delivered end to end (docs/SPEC.md 7.8.7).  Portable:
CPython and MicroPython.

The backend numbers the settlement acks of each device 1, 2, 3, ... (`n`,
signed inside each ack, settlement_ack.py) and keeps every one pending
until the terminal confirms it.  The terminal confirms with one number in
its status message: `settle_n`, the highest n such that it has processed
every ack 1..n (applied it, or recognised it as a duplicate, or refused it
for good: replayed, stale, invalid).  The backend re-sends every ack above
settle_n, in order, when the terminal comes online and on a timer.  So an
ack lost anywhere (a broker restarted before its save, a queue over its
limit, a session wiped by a client-id takeover) is sent again until the
terminal's own cursor passes it, and a duplicate changes nothing.

Batches: many acks in one MQTT message,
    {"v": 1, "kind": "settlements", "dev": dev, "acks": [ack bytes, ...]}
an unsigned envelope; every ack in it is a complete signed settlement ack
(decode_down checks each one), so each journal record keeps the exact
bytes the backend signed.
"""

from daozhang.agent.core import cbor
from daozhang.agent.core.errors import DecodeError
from daozhang.agent.core.sync import sync_messages as msgs

BATCH_KIND = "settlements"
MAX_BATCH_BYTES = 256 * 1024        # under mosquitto's max_packet_size (1 MiB)
MAX_BATCH_ACKS = 500
_MARK = b"\x6bsettlements"          # the CBOR text "settlements"


def encode_batch(dev, acks):
    """One message carrying `acks` (each a signed settlement ack's bytes)."""
    return cbor.dumps({"v": msgs.VERSION, "kind": BATCH_KIND, "dev": dev, "acks": list(acks)})


def decode_batch(payload, device_id):
    """The list of ack payloads in a batch, or None if `payload` is not a
    batch (then it is an ordinary down message).  A batch for another
    device, or malformed, raises DownRejected."""
    if _MARK not in payload:
        return None                     # cheap: receipts acks never carry the word
    try:
        msg = cbor.loads(bytes(payload))
    except DecodeError:
        return None
    except Exception:   # a decoder bug must not take the agent down
        return None
    if not isinstance(msg, dict) or msg.get("kind") != BATCH_KIND:
        return None
    if len(payload) > MAX_BATCH_BYTES:
        raise msgs.DownRejected(msgs.MALFORMED, "settlement batch of %d bytes, at most %d"
                                % (len(payload), MAX_BATCH_BYTES))
    if sorted(msg) != ["acks", "dev", "kind", "v"] or msg["v"] != msgs.VERSION:
        raise msgs.DownRejected(msgs.SCHEMA, "settlement batch: expected exactly v, kind, dev, acks")
    if msg["dev"] != device_id:
        raise msgs.DownRejected(msgs.WRONG_DEVICE, "settlement batch for device %r, this is %r"
                                % (msg["dev"], device_id))
    acks = msg["acks"]
    if not isinstance(acks, list) or not 0 < len(acks) <= MAX_BATCH_ACKS:
        raise msgs.DownRejected(msgs.SCHEMA, "settlement batch: acks must be a list of 1..%d"
                                % MAX_BATCH_ACKS)
    for ack in acks:
        if not isinstance(ack, bytes):
            raise msgs.DownRejected(msgs.SCHEMA, "settlement batch: every ack must be bytes")
    return acks


class AppliedCursor:
    """What the terminal has processed, as the backend needs to hear it.

    `done(n)` marks ack n processed; `value` is the highest n with every
    ack 1..n processed (0: none).  Acks can arrive out of order (a resend
    overtakes a queued copy), so numbers above a gap wait in `above` until
    the gap fills.  `above` is bounded by the backend's window: it sends at
    most one window past the confirmed cursor (SPEC 7.8.7).
    """

    def __init__(self, value=0, above=()):
        if type(value) is not int or value < 0:
            raise ValueError("settle cursor must be a non-negative integer, got %r" % (value,))
        self.value = value
        self.above = set(n for n in above if n > value)

    def done(self, n):
        """Mark n processed; True if `value` moved."""
        if n <= self.value or n in self.above:
            return False
        if n != self.value + 1:
            self.above.add(n)
            return False
        self.value = n
        while self.value + 1 in self.above:
            self.above.discard(self.value + 1)
            self.value += 1
        return True

    def state(self):
        """[value, sorted above]: what to save, for AppliedCursor(*state)."""
        return [self.value, sorted(self.above)]
