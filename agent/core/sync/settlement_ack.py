"""Settlement acks: the backend tells a device how one sale settled
(docs/SPEC.md §7.8).  Portable: CPython and MicroPython.

A settlement ack is a down message on `daozhang/v1/<dev>/acks` with
`kind` "settlement".  The common checks (decode, exact schema, device, key
id, signature) are sync_messages.decode_down's, unchanged, given DOWN_KIND
below (core/sync/sync_core.py passes it; nothing is registered on import).  What only
a settlement ack has:

- `id`: 16 random bytes chosen by the backend; the agent refuses an id it
  already accepted (`replay`, screen() below), so a recorded ack cannot be
  played again to settle a sale twice or to hide a later discrepancy;
- `row`: the acquirer's settlement row (SPEC 7.4), exactly
  the keys of ROW_FIELDS, each of its type (null where the file had none);
- `seq`: the journal seq of the receipt the backend matched, or null for a
  settlement matching no receipt (the device matches again itself, with
  the same Matcher: the backend's verdict is informational).

- `n`: the ack's delivery number for this device, 1, 2, 3, ... in the
  order the backend queued them; the terminal confirms by the highest n
  below which it has processed everything (settlement_delivery.py, SPEC
  7.8.7), and the backend sends again whatever is above it.

Signed bytes: the deterministic CBOR array
    ["daozhang/settlement-ack/v2", dev, id, at, seq, row, kid, n]
by the backend key (a domain of its own: a receipts ack signature never
verifies as a settlement ack, nor the other way round).
"""

import hashlib

from daozhang.agent.core import cbor
from daozhang.agent.core import merchant_ids
from daozhang.agent.core.errors import RemoteError
from daozhang.agent.core.sync import sync_messages as msgs

DOMAIN = "daozhang/settlement-ack/v2"
KIND = "settlement"
ID_SIZE = 16
MAX_TEXT = 64
MAX_MONEY = 10 ** 15

# row key -> (predicate, description)
def _text_or_none(v):
    return v is None or (isinstance(v, str) and 0 < len(v) <= MAX_TEXT)


def _digits_or_none(n):
    def check(v):
        if v is None:
            return True
        if not isinstance(v, str) or len(v) != n:
            return False
        for c in v:
            if c not in "0123456789":
                return False
        return True
    return check


def _money(v):
    return isinstance(v, int) and not isinstance(v, bool) and -MAX_MONEY < v < MAX_MONEY


def _uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 63


def _uint_or_none(v):
    return v is None or _uint(v)


ROW_KINDS = ("sale", "refund", "void", "reversal", "preauth_completion")

ROW_FIELDS = {
    "acquirer_ref": (lambda v: isinstance(v, str) and 0 < len(v) <= MAX_TEXT, "1-64 characters"),
    "merchant_id": (lambda v: v is None or merchant_ids.kind_of(v) is not None,
                    "a merchant id (merchant_ids.py) or null"),
    "terminal_id": (_text_or_none, "1-64 characters or null"),
    "rrn": (_text_or_none, "1-64 characters or null"),
    "auth_code": (_text_or_none, "1-64 characters or null"),
    "txn_time": (_uint_or_none, "Unix ms or null"),
    "kind": (lambda v: v is None or v in ROW_KINDS, "a transaction kind or null"),
    "amount": (_money, "signed minor units"),
    "fee": (_money, "signed minor units"),
    "settled_amount": (_money, "signed minor units"),
    "settled_at": (_uint, "Unix ms"),
    "mcc": (_digits_or_none(4), "4 digits or null"),
    "region": (_digits_or_none(4), "4 digits or null"),
}


def row_ok(row):
    """True if `row` has exactly ROW_FIELDS, each of its type."""
    if not isinstance(row, dict) or len(row) != len(ROW_FIELDS):
        return False
    for name in ROW_FIELDS:
        if name not in row or not ROW_FIELDS[name][0](row[name]):
            return False
    return True


def row_problem(row):
    """The first thing wrong with a row, as text (None if it is fine)."""
    if not isinstance(row, dict):
        return "row: expected a map"
    for name in row:
        if name not in ROW_FIELDS:
            return "row.%s: unexpected key" % name
    return msgs.field_problem(ROW_FIELDS, row, "row.")


def wire_row(row):
    """A settlement row as read from a file (settlement_csv) -> the ack's row:
    exactly ROW_FIELDS (`line`, `card` and anything else dropped)."""
    out = {}
    for name in ROW_FIELDS:
        out[name] = row.get(name)
    return out


FIELDS = {
    "v": (lambda v: v == msgs.VERSION, "1"),
    "kind": (lambda v: v == KIND, '"settlement"'),
    "dev": (msgs._text, "a device id"),
    "id": (msgs._bytes_of(ID_SIZE), "16 bytes"),
    "at": (_uint, "Unix milliseconds"),
    "seq": (_uint_or_none, "a journal seq or null"),
    "row": (row_ok, "a settlement row (SPEC 7.8.2)"),
    "kid": (msgs._bytes_of(msgs.KID_SIZE), "8 bytes"),
    "n": (lambda v: _uint(v) and v >= 1, "a delivery number >= 1"),
    "sig": (msgs._bytes_of(msgs.SIG_SIZE), "a 64-byte Ed25519 signature"),
}


def signed_bytes(msg):
    return cbor.dumps([DOMAIN, msg["dev"], msg["id"], msg["at"], msg["seq"], msg["row"],
                       msg["kid"], msg["n"]])


# What sync_messages.decode_down needs to accept (and authenticate) this kind.
DOWN_KIND = {"fields": FIELDS, "signed": signed_bytes}


def encode(dev, ack_id, at, seq, row, kid, sign, n):
    """The payload the backend publishes; `sign(bytes) -> 64-byte signature`;
    `n` the device's delivery number (SPEC 7.8.7)."""
    msg = {"v": msgs.VERSION, "kind": KIND, "dev": dev, "id": ack_id, "at": at, "seq": seq,
           "row": row, "kid": kid, "n": n}
    problem = row_problem(row)
    if problem is not None:
        raise RemoteError("settlement ack: " + problem)
    msg["sig"] = sign(signed_bytes(msg))
    return cbor.dumps(msg)


# -- the agent's screen before the watchdog (SPEC 7.8.3 rule 2) ------------------

FRESH = "fresh"               # goes on to the watchdog
REDELIVERED = "redelivered"   # the very same ack again: processed, nothing changes
REPLAY = "replay"             # an accepted id on other bytes: refused, security alert
STALE = "stale"               # older than the watch window on a trusted clock: refused
DIGEST_SIZE = 8


def ack_digest(payload):
    """8 bytes naming an ack's exact bytes: a redelivery is byte-identical."""
    return hashlib.sha256(bytes(payload)).digest()[:DIGEST_SIZE]


def screen(known_digest, digest, at, now, clock_trusted, window_ms):
    """The verdict on one authenticated settlement ack, before its row reaches
    the watchdog: FRESH, REDELIVERED, REPLAY or STALE.

    `known_digest`: the digest kept for its id when that id was accepted
    (None if never); `digest`: ack_digest of these bytes; `at`: the ack's
    `at`; `window_ms`: the watchdog's expiry window.  A stale ack's id may
    have left the replay set with its journal record, so on a trusted clock
    its age alone refuses it; an untrusted clock proves no age.
    """
    if known_digest is not None:
        return REDELIVERED if known_digest == digest else REPLAY
    if clock_trusted and at < now - window_ms:
        return STALE
    return FRESH
