"""Alert transitions on the `alerts` topic (docs/SPEC.md 6.2).  Sans-IO.

Every alert transition is also a journal record that reaches the backend
with the receipts; the topic copy is the fast path.  Two rules live here:

- the payloads: one transition {"v", "dev", "at", "alert"}, or up to
  ALERTS_PER_MESSAGE of them in one {"v", "dev", "at", "alerts": [...]}, so
  an outage's 100,000 overdue sales go up in hundreds of messages;
- what is still active (not cleared), by kind: sent again once a backend
  ack proves a worker is subscribed (a message published while no worker
  was is dropped by the broker; the backend deduplicates).

Portable: CPython and MicroPython.
"""

from daozhang.agent.core import cbor

VERSION = 1
CLEARED_STATES = ("clear", "resolved", "withdrawn", "expired", "inactive")
ALERTS_PER_MESSAGE = 64


def cbor_safe(value):
    """`value` with only what canonical CBOR carries: text keys, and ints
    beyond 64 bits, floats and other objects as text."""
    if isinstance(value, dict):
        out = {}
        for k in value:
            out[str(k)] = cbor_safe(value[k])
        return out
    if isinstance(value, (list, tuple)):
        return [cbor_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        return value
    if isinstance(value, int):
        return value if -2 ** 63 <= value < 2 ** 64 else str(value)
    return str(value)


def one_alert(device_id, alert, at):
    return cbor.dumps({"v": VERSION, "dev": device_id, "at": at, "alert": cbor_safe(alert)})


def alert_chunks(device_id, alerts, at, keep=None):
    """Payloads of ALERTS_PER_MESSAGE transitions each, in order; with
    `keep`, only the last `keep` payloads are encoded (the rest would be
    dropped by a full queue anyway).  Returns (payloads, skipped)."""
    starts = list(range(0, len(alerts), ALERTS_PER_MESSAGE))
    skipped = 0
    if keep is not None and len(starts) > keep:
        skipped = len(starts) - keep
        starts = starts[skipped:]
    payloads = []
    for i in starts:
        chunk = [cbor_safe(a) for a in alerts[i:i + ALERTS_PER_MESSAGE]]
        payloads.append(cbor.dumps({"v": VERSION, "dev": device_id, "at": at, "alerts": chunk}))
    return payloads, skipped


class ActiveAlerts:
    """The latest payload of each alert kind not cleared, for the re-send."""

    def __init__(self, device_id):
        self.device_id = device_id
        self.by_kind = {}

    def note(self, alert, at, payload=None):
        kind = alert.get("kind")
        if alert.get("state") in CLEARED_STATES:
            self.by_kind.pop(kind, None)
        else:
            self.by_kind[kind] = payload if payload is not None else one_alert(self.device_id, alert, at)

    def payloads(self):
        return list(self.by_kind.values())
