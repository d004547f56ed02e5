"""Deposit findings as a terminal alert (docs/SPEC.md §7.10.2).  Portable:
CPython and MicroPython.

`backend settle --bank` finds a settlement day whose payout is missing from
the bank statement or short (settlement_files/payouts.py).  The backend tells
each terminal whose sales that day carried, in a signed down message on
`daozhang/v1/<dev>/acks` with `kind` "deposit":

    {"v": 1, "kind": "deposit", "dev", "id": 16 random bytes, "at": Unix ms,
     "day": "YYYY-MM-DD", "status": "deposit_missing" | "deposit_short",
     "expected": minor units, "received": minor units or null,
     "currency": "CNY", "sales": [pos_txn_id, ... at most MAX_SALES],
     "kid", "sig"}

Signed bytes: the deterministic CBOR array
    ["daozhang/deposit-finding/v1", dev, id, at, day, status, expected,
     received, currency, sales, kid]
by the backend key (its own domain: it never verifies as another kind).

The terminal raises alert (status, day): `observation(msg, now)` below is
the observation the alert machine takes (AlertMachine.observe).  A
re-delivered or replayed message raises the same (kind, key) again, which
the machine ignores while it fires: nothing can be settled or hidden by it.
The alert resolves itself after its ttl (7 days, agent/core/settlement/alerts.py).
"""

from daozhang.agent.core import cbor
from daozhang.agent.core.errors import RemoteError
from daozhang.agent.core.sync import sync_messages as msgs

DOMAIN = "daozhang/deposit-finding/v1"
KIND = "deposit"
ID_SIZE = 16
MAX_SALES = 20
MAX_TEXT = 64
MAX_MONEY = 10 ** 15
STATUSES = ("deposit_missing", "deposit_short")


def _uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 63


def _money(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < MAX_MONEY


def _day(v):
    if not isinstance(v, str) or len(v) != 10 or v[4] != "-" or v[7] != "-":
        return False
    for i in (0, 1, 2, 3, 5, 6, 8, 9):
        if v[i] not in "0123456789":
            return False
    return True


def _currency(v):
    if not isinstance(v, str) or len(v) != 3:
        return False
    for c in v:
        if not "A" <= c <= "Z":
            return False
    return True


def _sales(v):
    if not isinstance(v, list) or len(v) > MAX_SALES:
        return False
    for s in v:
        if not isinstance(s, str) or not 0 < len(s) <= MAX_TEXT:
            return False
    return True


FIELDS = {
    "v": (lambda v: v == msgs.VERSION, "1"),
    "kind": (lambda v: v == KIND, '"deposit"'),
    "dev": (msgs._text, "a device id"),
    "id": (msgs._bytes_of(ID_SIZE), "16 bytes"),
    "at": (_uint, "Unix milliseconds"),
    "day": (_day, "a date YYYY-MM-DD"),
    "status": (lambda v: v in STATUSES, "deposit_missing or deposit_short"),
    "expected": (_money, "minor units >= 0"),
    "received": (lambda v: v is None or _money(v), "minor units >= 0 or null"),
    "currency": (_currency, "an ISO 4217 code"),
    "sales": (_sales, "at most %d pos_txn_ids" % MAX_SALES),
    "kid": (msgs._bytes_of(msgs.KID_SIZE), "8 bytes"),
    "sig": (msgs._bytes_of(msgs.SIG_SIZE), "a 64-byte Ed25519 signature"),
}


def signed_bytes(msg):
    return cbor.dumps([DOMAIN, msg["dev"], msg["id"], msg["at"], msg["day"], msg["status"],
                       msg["expected"], msg["received"], msg["currency"], msg["sales"],
                       msg["kid"]])


# For sync_messages.down_kinds (core/sync/sync_core.py DOWN_KINDS).
DOWN_KIND = {"fields": FIELDS, "signed": signed_bytes}


def problem(msg):
    """The first field of `msg` (without sig) that is wrong, as text, or None."""
    wrong = msgs.field_problem(FIELDS, msg, skip=("sig",))
    if wrong is not None:
        return wrong
    if msg["status"] == "deposit_missing" and msg["received"] is not None:
        return "received: a missing deposit received nothing, got %r" % (msg["received"],)
    if msg["status"] == "deposit_short" and (msg["received"] is None
                                             or msg["received"] >= msg["expected"]):
        return "received: a short deposit is below expected %d, got %r" % (
            msg["expected"], msg["received"])
    return None


def encode(dev, ack_id, at, payout, currency, kid, sign):
    """The payload the backend publishes for one payout finding (a dict of
    settlement_files/payouts.check_payouts: day, status, expected, received,
    sales); `sign(bytes) -> 64-byte signature`.  The sales listed are the
    first MAX_SALES of `payout["sales"]` (the backend passes this device's)."""
    msg = {"v": msgs.VERSION, "kind": KIND, "dev": dev, "id": ack_id, "at": at,
           "day": payout["day"], "status": payout["status"], "expected": payout["expected"],
           "received": payout["received"], "currency": currency,
           "sales": list(payout["sales"])[:MAX_SALES], "kid": kid}
    why = problem(msg)
    if why is not None:
        raise RemoteError("deposit finding: " + why)
    msg["sig"] = sign(signed_bytes(msg))
    return cbor.dumps(msg)


def observation(msg, now):
    """A verified deposit message -> the alert observation (kind = status,
    key = settlement day; amount = what is missing; detail names the day,
    the expected and received amounts and the sales)."""
    received = msg["received"] or 0
    return {"kind": msg["status"], "key": msg["day"], "active": True, "at": now,
            "amount": msg["expected"] - received, "currency": msg["currency"],
            "detail": {"day": msg["day"], "expected": msg["expected"],
                       "received": msg["received"], "sales": list(msg["sales"])}}
