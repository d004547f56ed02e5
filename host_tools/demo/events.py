"""What the demo shows: events from the POS, the acquirer and the processes'
logs, and the running tally that becomes the summary.

The agent and the backend log one event per line (`ts=... level=info
event=sync_acked to=15 backlog=0`).  `parse_logfmt` reads such a line;
`LOG_EVENTS` maps (source, event name) to a function that turns its fields
into a DemoEvent, or None for lines the demo does not show.  Sans-IO: lines
in, events out; the tally only counts.
"""

from collections import namedtuple

# kind: setup | txn | sync | settle | check | alert | warn | info
DemoEvent = namedtuple("DemoEvent", "kind text data")

# The discrepancy names of the settlement checks (docs/SPEC.md §7.4), in order.
CHECK_KINDS = ("not_arrived", "late", "short", "over_fee", "mcc_jump", "region_jump",
               "duplicate_settlement", "unknown_settlement", "cancelled_settled")
# Alert actions that start / end an alert (7.6): what "fired" and "resolved" count.
FIRED_ACTIONS = ("firing",)
RESOLVED_ACTIONS = ("resolved", "expired")


def parse_logfmt(line):
    """{key: value} from `key=value key="quoted value" ...`, or None if the
    line is not an event line (no `event=`)."""
    fields, i, n = {}, 0, len(line)
    while i < n:
        while i < n and line[i] == " ":
            i += 1
        start = i
        while i < n and line[i] not in "= ":
            i += 1
        key = line[start:i]
        if i >= n or line[i] != "=":
            if key:
                return None         # not logfmt: a traceback, a plain message
            continue
        i += 1
        if i < n and line[i] == '"':
            i += 1
            chars = []
            while i < n and line[i] != '"':
                if line[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(line[i])
                i += 1
            i += 1
            value = "".join(chars)
        else:
            start = i
            while i < n and line[i] != " ":
                i += 1
            value = line[start:i]
        fields[key] = value
    return fields if "event" in fields else None


def _int(fields, key, default=None):
    try:
        return int(fields.get(key))
    except (TypeError, ValueError):
        return default


def _sync_online(f):
    return DemoEvent("info", "agent online: connected to the broker (TLS, client certificate)", {})


def _sync_acked(f):
    to = _int(f, "to")
    if to is None:
        return None
    return DemoEvent("sync", "backend stored and acked journal records below seq %d (backlog %s)"
                     % (to, f.get("backlog", "?")), {"to": to})


def _sync_offline(f):
    return DemoEvent("warn", "agent offline: %s" % f.get("cause", "?"), {})


def _rejected(f):
    return DemoEvent("warn", "agent rejected a down message: %s" % f.get("reason", "?"), {})


def _agent_alert(f):
    """An alert transition as the agent logs it (`event=alert` with the
    action's fields, or `event=alert_<action>`)."""
    action = f.get("action") or f.get("state") or "firing"
    return _alert_event(action, f)


# Transitions not shown: with `for` = 0 (every settlement kind) "pending" is
# followed at once by "firing"; "repeated" re-notifies an alert already shown.
QUIET_ACTIONS = ("pending", "repeated")


def _alert_event(action, f):
    if action in QUIET_ACTIONS:
        return None
    kind = f.get("kind", "?")
    what = f.get("key") or f.get("pos_txn_id") or ""
    extra = " ".join(x for x in (what, f.get("line") or f.get("display") or "") if x)
    return DemoEvent("alert", "%-9s %s%s%s" % (action, kind, " " if extra else "", extra),
                     {"action": action, "kind": kind, "key": f.get("key"),
                      "severity": f.get("severity") or f.get("level")})


def _settlement_checked(f):
    checks = [c for c in (f.get("checks") or "").replace(",", " ").split() if c in CHECK_KINDS]
    ref = f.get("acquirer_ref", "?")
    who = f.get("pos_txn_id") or "no sale"
    verdict = ", ".join(checks) if checks else "ok"
    return DemoEvent("check", "agent checked settlement %s for %s: %s" % (ref, who, verdict),
                     {"checks": checks, "acquirer_ref": ref})


def _backend_alert(f):
    if f.get("state") not in ("firing", "resolved"):
        return None
    return DemoEvent("info", "operator sees it: backend stored alert %s (%s)"
                     % (f.get("kind", "?"), f.get("state", "?")),
                     {"kind": f.get("kind"), "state": f.get("state")})


def _finding(f):
    return DemoEvent("warn", "backend finding %s: %s" % (f.get("kind", "?"), f.get("detail", "")), {})


# (source, event) -> translator.  Unlisted events are not shown (they stay in the logs).
LOG_EVENTS = {
    ("agent", "sync_online"): _sync_online,
    ("agent", "sync_acked"): _sync_acked,
    ("agent", "sync_offline"): _sync_offline,
    ("agent", "sync_rejected"): _rejected,
    ("agent", "alert"): _agent_alert,
    ("agent", "settlement_checked"): _settlement_checked,
    ("backend", "device_alert"): _backend_alert,
    ("backend", "finding"): _finding,
}


def translate(source, fields):
    name = fields.get("event", "")
    handler = LOG_EVENTS.get((source, name))
    if handler is None and source == "agent" and name.startswith("alert_"):
        return _alert_event(name[len("alert_"):], fields)
    return None if handler is None else handler(fields)


class Tally:
    """The running counts behind the live header and the final summary."""

    def __init__(self):
        self.transactions = 0
        self.refused = 0
        self.amount = 0
        self.txn_seqs = []          # journal seq of each POS transaction, in order
        self.acked_to = 0           # the backend holds every record below this seq
        self.settlement_rows = 0    # rows the acquirer sent (files ingested)
        self.settled = 0            # rows the backend matched to a sale
        self.settle_runs = 0
        self.settle_failures = 0
        self.alerts_fired = 0
        self.alerts_resolved = 0
        self.alerts_by_kind = {}
        self.discrepancies = dict((k, 0) for k in CHECK_KINDS)
        self.injected = {}          # what the acquirer meant to do, by fate
        self.firing = {}            # (kind, key) -> True while firing
        self.warnings = 0

    @property
    def synced(self):
        return sum(1 for seq in self.txn_seqs if seq < self.acked_to)

    def add(self, event):
        kind, data = event.kind, event.data
        if kind == "txn":
            if data.get("refused"):
                self.refused += 1
            else:
                self.transactions += 1
                self.amount += data.get("amount", 0)
                if data.get("seq") is not None:
                    self.txn_seqs.append(data["seq"])
        elif kind == "sync":
            self.acked_to = max(self.acked_to, data.get("to", 0))
        elif kind == "settle":
            self.settle_runs += 1
            self.settlement_rows += data.get("rows", 0)
            self.settled += data.get("matched", 0)
            if data.get("failed"):
                self.settle_failures += 1
            for fate, n in data.get("fates", {}).items():
                self.injected[fate] = self.injected.get(fate, 0) + n
        elif kind == "check":
            for check in data.get("checks", ()):
                self.discrepancies[check] = self.discrepancies.get(check, 0) + 1
        elif kind == "alert":
            action, ident = data.get("action"), (data.get("kind"), data.get("key"))
            if action in FIRED_ACTIONS:
                self.alerts_fired += 1
                self.firing[ident] = True
                self.alerts_by_kind[data.get("kind")] = self.alerts_by_kind.get(data.get("kind"), 0) + 1
            elif action in RESOLVED_ACTIONS:
                self.alerts_resolved += 1
                self.firing.pop(ident, None)
        elif kind == "warn":
            self.warnings += 1

    def summary(self):
        return {
            "transactions": self.transactions,
            "refused": self.refused,
            "amount": self.amount,
            "synced": self.synced,
            "acked_to": self.acked_to,
            "settlement_rows": self.settlement_rows,
            "settled": self.settled,
            "settle_failures": self.settle_failures,
            "alerts_fired": self.alerts_fired,
            "alerts_resolved": self.alerts_resolved,
            "alerts_firing": len(self.firing),
            "alerts_by_kind": dict(sorted(self.alerts_by_kind.items())),
            "discrepancies": dict((k, v) for k, v in self.discrepancies.items()),
            "injected": dict(sorted(self.injected.items())),
        }
