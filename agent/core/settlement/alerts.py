"""The alert state machine (docs/SPEC.md §7.6).

Modelled on Prometheus and its Alertmanager: an alert is identified by
(kind, key); a rule says whether its condition holds ("raise" / "clear"
observations); an alert waits `for` ms in pending before it fires;
firing alerts repeat their notification every `repeat` ms, escalate
from warning to critical at `escalate_at`, and resolve when the condition
clears.  Inhibition: while a source alert is pending or firing, its target
kinds neither start, nor fire, nor escalate, nor repeat (an untrusted clock
holds deadline alerts and never invents overdue ones).

Every state change is an action: a dict holding the alert's whole record
after the change, to be journaled and published.  `restore(action)` replays
one; a machine restored from the journaled actions equals the one that
emitted them.  All transitions are in TRANSITIONS (one table, this file);
an event the table does not allow raises IllegalTransition and changes
nothing.  Portable core: no time import, `now` is an argument.
"""

from daozhang.agent.core.errors import LocalError
from daozhang.agent.core.settlement.alert_index import AlertIndex, next_deadline
from daozhang.agent.core.settlement.alert_store import MemoryAlertStore

STATES = ("inactive", "pending", "firing", "resolved")
EVENTS = ("raise", "clear", "for_elapsed", "escalate", "repeat", "expire")

# (state, event) -> (new state, action name or None for "no change")
TRANSITIONS = {
    ("inactive", "raise"): ("pending", "pending"),
    ("resolved", "raise"): ("pending", "pending"),
    ("pending", "raise"): ("pending", None),
    ("firing", "raise"): ("firing", None),
    ("pending", "for_elapsed"): ("firing", "firing"),
    ("pending", "clear"): ("inactive", "withdrawn"),
    ("firing", "clear"): ("resolved", "resolved"),
    ("inactive", "clear"): ("inactive", None),
    ("resolved", "clear"): ("resolved", None),
    ("firing", "escalate"): ("firing", "escalated"),
    ("firing", "repeat"): ("firing", "repeated"),
    ("firing", "expire"): ("resolved", "expired"),
}

HOUR = 3600000  # every time and duration here is Unix milliseconds (SPEC 2)
DAY = 24 * HOUR
# kind -> severity it fires with, `for` (ms pending), repeat interval,
# `ttl` (a one-shot finding resolves itself, action "expired", this long
# after it fired: nothing else would ever clear it), and the display nouns
# (singular, plural); "count": False shows the title alone (one-instance
# kinds).  Conditions that can clear (overdue, clock, journal, backlog)
# have no ttl.
def _kind(severity, repeat, nouns, ttl=None, pending_for=0, count=True):
    return {"severity": severity, "for": pending_for, "repeat": repeat, "ttl": ttl,
            "nouns": nouns, "count": count}


KINDS = {
    "security": _kind("critical", 4 * HOUR, ("rejected message", "rejected messages"), DAY),
    "journal_full": _kind("critical", HOUR, ("journal full: sales refused",), count=False),
    # Damage found by the scrub in a retained segment (SPEC 3.9): never clears by itself.
    "journal_damaged": _kind("critical", HOUR, ("journal damaged: call the technician",), count=False),
    "storage_error": _kind("critical", HOUR, ("storage error", "storage errors"), DAY),
    "clock_untrusted": _kind("warning", 4 * HOUR, ("clock not trusted: deadlines on hold",),
                             count=False),
    "settlement_overdue": _kind("warning", 4 * HOUR, ("payment overdue", "payments overdue")),
    "settlement_short": _kind("critical", 12 * HOUR, ("settlement short", "settlements short"),
                              7 * DAY),
    "fee_over_contract": _kind("warning", 12 * HOUR, ("fee over contract", "fees over contract"),
                               7 * DAY),
    "mcc_jump": _kind("critical", 12 * HOUR, ("settled under another MCC",), 7 * DAY),
    "region_jump": _kind("critical", 12 * HOUR, ("settled under another region",), 7 * DAY),
    # The bank statement lacks a settlement day's payout, or holds less (SPEC 7.10.2).
    "deposit_missing": _kind("critical", 12 * HOUR, ("payout missing at the bank",
                                                     "payouts missing at the bank"), 7 * DAY),
    "deposit_short": _kind("critical", 12 * HOUR, ("payout short at the bank",
                                                   "payouts short at the bank"), 7 * DAY),
    "unknown_settlement": _kind("warning", 12 * HOUR,
                                ("unknown settlement", "unknown settlements"), 7 * DAY),
    "duplicate_settlement": _kind("warning", 12 * HOUR,
                                  ("duplicate settlement", "duplicate settlements"), 7 * DAY),
    "cancelled_settled": _kind("warning", 12 * HOUR,
                               ("cancelled sale settled", "cancelled sales settled"), 7 * DAY),
    "sale_unjudgeable": _kind("warning", 12 * HOUR, ("sale the watchdog cannot judge",
                                                     "sales the watchdog cannot judge"), 7 * DAY),
    "sync_backlog": _kind("warning", 4 * HOUR, ("sync backlog",), pending_for=10 * 60000,
                          count=False),
    "journal_near_full": _kind("warning", 4 * HOUR, ("journal nearly full",), count=False),
    # The link is up but the backlog does not move (SPEC 6.12): cleared by the link.
    "sync_stalled": _kind("warning", 4 * HOUR, ("sync stalled",), count=False),
}
KIND_ORDER = ("security", "journal_damaged", "journal_full", "storage_error", "clock_untrusted",
              "settlement_overdue", "settlement_short", "fee_over_contract", "mcc_jump",
              "region_jump", "deposit_missing", "deposit_short", "unknown_settlement", "duplicate_settlement", "cancelled_settled",
              "sale_unjudgeable", "sync_backlog", "sync_stalled", "journal_near_full")
# source kind -> kinds it holds while pending or firing (Alertmanager inhibit_rules)
INHIBIT = {"clock_untrusted": ("settlement_overdue",),
           "journal_full": ("journal_near_full",)}
ALL_CLEAR = "all payments in order"
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
CURRENCY_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "HKD": "HK$", "GBP": "£", "JPY": "¥"}
ZERO_DECIMAL = ("JPY", "KRW")
# Record fields an action carries (besides action and at).
FIELDS = ("kind", "key", "state", "severity", "since", "pending_since", "fired_at",
          "resolved_at", "escalate_at", "last_notified", "amount", "currency", "detail")


class IllegalTransition(LocalError):
    """An event the transition table does not allow in the alert's state."""


class ReplayMismatch(LocalError):
    """A journaled action that cannot follow the machine's current state."""


def format_money(minor, currency):
    symbol = CURRENCY_SYMBOLS.get(currency, currency + " ")
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    if currency in ZERO_DECIMAL:
        whole, cents = minor, None
    else:
        whole, cents = minor // 100, minor % 100
    digits = str(whole)
    groups = []
    while len(digits) > 3:
        groups.insert(0, digits[-3:])
        digits = digits[:-3]
    groups.insert(0, digits)
    text = ",".join(groups)
    if cents is not None:
        text += ".%02d" % cents
    return sign + symbol + text


def format_age(ms):
    """A short age for a display line: "45m", "7h", "5d"."""
    minutes = max(0, ms) // 60000
    if minutes < 60:
        return "%dm" % minutes
    if minutes < 48 * 60:
        return "%dh" % (minutes // 60)
    return "%dd" % (minutes // (24 * 60))


def transition_table_dot():
    """Graphviz text of TRANSITIONS (no-op entries left out)."""
    lines = ["digraph alert {", "  rankdir=LR;"]
    for (state, event) in sorted(TRANSITIONS):
        new, action = TRANSITIONS[(state, event)]
        if action is not None:
            lines.append('  %s -> %s [label="%s / %s"];' % (state, new, event, action))
    lines.append("}")
    return "\n".join(lines)


class AlertMachine:
    def __init__(self, currency="CNY", kinds=None, store=None):
        self.kinds = kinds or KINDS
        self.currency = currency
        # (kind, key) -> record dict; inactive alerts are absent.  Read it
        # like a dict; change it only through handle/restore/put_record/drop,
        # which keep the store's deadlines and the index's counts in step.
        # In memory by default; the daemon passes an on-disk store.
        self.alerts = MemoryAlertStore() if store is None else store
        self.index = AlertIndex(self.kinds, INHIBIT, self.alerts)
        # Idents changed since the last take_changed() (an in-memory store
        # only): what a caller persisting the records elsewhere must write.
        self.changed = set() if store is None else None

    def _set(self, ident, rec):
        old = self.alerts.get(ident)
        # The store first: one that refuses the record (too big for a flash
        # slot, a full file system) leaves the index's counts as they were.
        if rec is None:
            if old is not None:
                self.alerts.delete(ident)
        else:
            self.alerts.put(ident, rec, next_deadline(rec, self.kinds[ident[0]]))
        self.index.changed(ident, old, rec)
        if self.changed is not None:
            self.changed.add(ident)

    def put_record(self, rec):
        """Adopt a whole record (loaded from disk, or a journaled action whose
        earlier transitions the ring reclaimed)."""
        clean = {}
        for name in FIELDS:
            clean[name] = rec.get(name)
        self._set((clean["kind"], clean["key"]), clean)

    def drop(self, ident):
        self._set(ident, None)

    def take_changed(self):
        out = self.changed or set()
        if self.changed is not None:
            self.changed = set()
        return out

    # -- the strict core: one event through the table ------------------------

    def handle(self, kind, key, event, now, fields=None):
        """Apply one event; returns the action dict, or None for a no-op.

        Raises IllegalTransition (state unchanged) when the table has no
        entry for (state, event), or for an unknown kind."""
        if kind not in self.kinds:
            raise IllegalTransition("unknown alert kind %r (expected one of %s)"
                                    % (kind, ", ".join(KIND_ORDER)))
        old = self.alerts.get((kind, key))
        state = old["state"] if old else "inactive"
        entry = TRANSITIONS.get((state, event))
        if entry is None:
            allowed = [e for e in EVENTS if (state, e) in TRANSITIONS]
            raise IllegalTransition("alert %s/%s: event %r not allowed in state %r (allowed: %s)"
                                    % (kind, key, event, state, ", ".join(allowed)))
        new_state, action = entry
        if action is None:
            return None
        if event == "raise":
            f = fields or {}
            rec = {"kind": kind, "key": key, "state": new_state,
                   "severity": self.kinds[kind]["severity"],
                   "since": f.get("since", now), "pending_since": now, "fired_at": None,
                   "resolved_at": None, "escalate_at": f.get("escalate_at"),
                   "last_notified": None, "amount": f.get("amount"),
                   "currency": f.get("currency", self.currency), "detail": f.get("detail")}
        else:
            rec = dict(old)
            rec["state"] = new_state
            if event == "for_elapsed":
                rec["fired_at"] = now
                rec["last_notified"] = now
            elif event == "escalate":
                rec["severity"] = "critical"
                rec["last_notified"] = now
            elif event == "repeat":
                rec["last_notified"] = now
            elif event in ("clear", "expire"):
                rec["resolved_at"] = now
        self._set((kind, key), None if new_state == "inactive" else rec)
        out = {"action": action, "at": now}
        for name in FIELDS:
            out[name] = rec[name]
        return out

    def restore(self, action):
        """Replay one journaled action; raises ReplayMismatch if it cannot
        follow the current state (state unchanged)."""
        kind, key = action.get("kind"), action.get("key")
        old = self.alerts.get((kind, key))
        state = old["state"] if old else "inactive"
        for (src, event), (dst, name) in TRANSITIONS.items():
            if src == state and name == action.get("action") and dst == action.get("state"):
                break
        else:
            raise ReplayMismatch("alert %s/%s: journaled action %r to %r cannot follow state %r"
                                 % (kind, key, action.get("action"), action.get("state"), state))
        if dst == "inactive":
            self._set((kind, key), None)
        else:
            self.put_record(action)

    def replay(self, action):
        """Replay one journaled action tolerantly: the journal is a ring, so
        an alert's earlier transitions may have been reclaimed; the action
        carries the alert's whole record, which is adopted as it stands.
        (Rebuilding from the journal: the daemon's settlement index, the
        board's alert store at boot, `daozhang agent alerts --from-journal`.)"""
        try:
            self.restore(action)
        except ReplayMismatch:
            ident = (action.get("kind"), action.get("key"))
            if action.get("state") == "inactive" or action.get("action") == "withdrawn":
                self.drop(ident)
            else:
                self.put_record(action)

    # -- the level-based face the watchdog and daemon use ----------------------

    def _held(self, kind):
        """Is `kind` inhibited now?  From the index's counts: O(kinds)."""
        return self.index.inhibited(kind)

    def inhibited_kinds(self):
        """Kinds held now: from the index's counts, O(kinds)."""
        held = set()
        for kind in self.kinds:
            if self.index.inhibited(kind):
                held.add(kind)
        return held

    def observe(self, obs):
        """An observation {"kind", "key", "active", "at", and for raising:
        "since", "escalate_at", "amount", "detail"} -> list of actions."""
        kind, key, now = obs["kind"], obs["key"], obs["at"]
        if not obs["active"]:
            action = self.handle(kind, key, "clear", now)
            return [action] if action else []
        rec = self.alerts.get((kind, key))
        if self._held(kind) and (rec is None or rec["state"] == "resolved"):
            return []  # inhibition: held kinds do not start
        action = self.handle(kind, key, "raise", now, obs)
        if action is None:
            # Already pending or firing: its deadlines are the tick's to
            # judge, in (kind, key) order, so a re-observation (a rebuilt
            # watchdog's first tick) emits what the uninterrupted one would.
            return []
        return [action] + self._advance((kind, key), now, False)

    def _advance(self, ident, now, with_repeat):
        rec = self.alerts.get(ident)
        actions = []
        if rec is None or self._held(ident[0]):
            return actions
        kind, key = ident
        if rec["state"] == "pending" and now >= rec["pending_since"] + self.kinds[kind]["for"]:
            actions.append(self.handle(kind, key, "for_elapsed", now))
            rec = self.alerts[ident]
        if rec["state"] != "firing":
            return actions
        ttl = self.kinds[kind].get("ttl")
        if ttl is not None and now >= rec["fired_at"] + ttl:
            actions.append(self.handle(kind, key, "expire", now))
            return actions
        if (rec["severity"] != "critical" and rec["escalate_at"] is not None
                and now >= rec["escalate_at"]):
            actions.append(self.handle(kind, key, "escalate", now))
        elif with_repeat and not self.kinds[kind]["count"] \
                and now >= rec["last_notified"] + self.kinds[kind]["repeat"]:
            actions.append(self.handle(kind, key, "repeat", now))
        return actions

    def tick(self, now, limit=None):
        """Time passes: pending alerts fire, firing ones escalate or repeat.
        Only alerts whose next deadline has come are visited (the index's
        due heaps), in (kind, key) order, so output is deterministic and the
        same as visiting every alert: O(due x log n), not O(n).  `limit`: at
        most that many alerts visited (a board's heap holds the actions of a
        few dozen, not of a day's sales escalating at once); the others stay
        due for the next tick, so their actions come a tick later."""
        actions = []
        for ident in self.index.pop_due(now, limit):
            actions.extend(self._advance(ident, now, True))
            rec = self.alerts.get(ident)
            if rec is not None and not self.alerts.has_due(ident):
                # Visited but nothing changed (cannot happen with the table's
                # deadlines; kept so an alert never loses its place).
                self.alerts.put(ident, rec, next_deadline(rec, self.kinds[ident[0]]))
        # Counted kinds repeat per group: one `repeated` action, carried by
        # the group's oldest firing alert, once `repeat` has passed since
        # any of them last notified (100,000 overdue sales: one repeat).
        for kind in sorted(self.index.groups):
            if self.kinds[kind]["count"]:
                key = self.index.group_repeat_due(kind, now)
                if key is not None:
                    actions.append(self.handle(kind, key, "repeat", now))
        return actions

    # -- views -----------------------------------------------------------------

    def state(self):
        """A plain, comparable copy of every alert record."""
        out = {}
        for ident in sorted(self.alerts):
            out[ident[0] + "/" + str(ident[1])] = dict(self.alerts[ident])
        return out

    def firing(self):
        """Every firing record, sorted (walks all alerts: views and tests only)."""
        return [self.alerts[i] for i in sorted(self.alerts) if self.alerts[i]["state"] == "firing"]

    def groups(self):
        """One summary per kind with firing alerts, worst first, from the
        index (O(kinds)): {"kind", "severity", "count", "amounts":
        {currency: minor units}, "oldest": earliest `since`}."""
        ranked = []
        for kind, group in self.index.groups.items():
            if group.count <= 0:
                continue
            severity = "critical" if group.critical else self.kinds[kind]["severity"]
            ranked.append((SEVERITY_RANK.get(severity, 9),
                           KIND_ORDER.index(kind) if kind in KIND_ORDER else 99, kind, severity))
        out = []
        for _, _, kind, severity in sorted(ranked):
            group = self.index.groups[kind]
            amounts = {}
            for currency, (total, _n) in group.amounts.items():
                amounts[currency or self.currency] = amounts.get(currency or self.currency, 0) + total
            out.append({"kind": kind, "severity": severity, "count": group.count,
                        "amounts": amounts, "oldest": self.index.oldest(kind)})
        return out

    def group_lines(self, now=None):
        """One display line per firing kind, worst first:
        "3 payments overdue, ¥1,250.00" (and ", oldest 5d" given `now`)."""
        lines = []
        for group in self.groups():
            spec = self.kinds[group["kind"]]
            nouns = spec["nouns"]
            if not spec["count"]:
                lines.append(nouns[0])
                continue
            count = group["count"]
            text = "%d %s" % (count, nouns[0] if count == 1 else nouns[-1])
            for currency in sorted(group["amounts"]):
                text += ", " + format_money(group["amounts"][currency], currency)
            if now is not None and group["oldest"] is not None:
                text += ", oldest " + format_age(now - group["oldest"])
            lines.append(text)
        return lines

    def display_line(self, now=None):
        """Everything on one line for a small display, worst first."""
        lines = self.group_lines(now)
        return " | ".join(lines) if lines else ALL_CLEAR

    def status_summary(self, now=None):
        """For the retained `status` message and the device outputs: counts
        and grouped lines, O(kinds) whatever the number of alerts."""
        critical, warning = self.index.firing_by_severity()
        counts = {"pending": self.index.pending, "firing": critical + warning,
                  "critical": critical, "warning": warning}
        worst = "critical" if counts["critical"] else ("warning" if counts["warning"] else None)
        counts["worst"] = worst
        counts["groups"] = self.groups()
        counts["lines"] = self.group_lines(now)
        counts["display"] = " | ".join(counts["lines"]) if counts["lines"] else ALL_CLEAR
        return counts
