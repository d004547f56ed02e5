"""What the alert machine (agent/core/settlement/alerts.py) keeps beside its records so
that no event costs more as alerts pile up (docs/DESIGN.md "Alerts at
outage scale").  Portable core: heapq exists on MicroPython too.

Three derived views, each updated on every record change (`changed(ident,
old, new)`), never recomputed by walking the alerts:

- holding: how many alerts of each inhibition source kind are pending or
  firing; a kind is inhibited while any of its sources counts above zero.
  O(1) per change and per question.
- due: every alert's next deadline (`next_deadline`: the earliest of its
  `for` (pending), ttl, escalation and repeat times; a resolved alert has
  none) is kept by the store (agent/core/settlement/alert_store.py) in an order by
  deadline per kind, so a tick finds what is due in O(due x log n) and
  never touches the alerts of an inhibited kind: an outage's 100,000 held
  overdue sales cost a tick nothing.
- groups: per kind, the firing alerts' count, how many are critical and the
  sum of their amounts per currency; the oldest `since` comes from the
  store's order: the display's grouped lines in O(kinds x log n).
"""

def next_deadline(rec, spec):
    """When the machine next has something to do for this record, or None.
    A counted kind repeats per group (AlertMachine.tick), not per alert."""
    state = rec["state"]
    if state == "pending":
        return rec["pending_since"] + spec["for"]
    if state != "firing":
        return None
    due = None if spec["count"] else rec["last_notified"] + spec["repeat"]
    ttl = spec.get("ttl")
    if ttl is not None and (due is None or rec["fired_at"] + ttl < due):
        due = rec["fired_at"] + ttl
    if rec["severity"] != "critical" and rec["escalate_at"] is not None \
            and (due is None or rec["escalate_at"] < due):
        due = rec["escalate_at"]
    return due


class _Group:
    """The firing alerts of one kind, summed."""

    def __init__(self):
        self.count = 0
        self.critical = 0
        self.amounts = {}   # currency -> [sum of amounts, alerts with an amount]

    def add(self, rec, sign):
        self.count += sign
        if rec["severity"] == "critical":
            self.critical += sign
        if rec["amount"] is not None:
            slot = self.amounts.get(rec["currency"])
            if slot is None:
                slot = self.amounts[rec["currency"]] = [0, 0]
            slot[0] += sign * rec["amount"]
            slot[1] += sign
            if slot[1] == 0:
                del self.amounts[rec["currency"]]


class AlertIndex:
    def __init__(self, kinds, inhibit, store):
        self.kinds = kinds
        self.inhibit = inhibit
        self.store = store                      # records, deadlines, oldest (alert_store.py)
        self.holding = {}                       # source kind -> pending or firing count
        self.groups = {}                        # kind -> _Group of its firing alerts
        self.pending = 0
        for source in inhibit:
            spec = kinds.get(source)
            if spec is not None and spec.get("ttl") is not None:
                # A source that could expire inside a tick would lift its
                # inhibition halfway through that tick's visits.
                raise ValueError("inhibition source %r must have no ttl" % source)
        for ident, rec in store.items():      # a store that outlived a restart
            self.changed(ident, None, rec)

    # -- updates -----------------------------------------------------------------

    def changed(self, ident, old, new):
        """Record `ident` went from `old` to `new` (either may be None):
        counts and sums here, the record and its deadline in the store."""
        kind = ident[0]
        if kind in self.inhibit:
            self.holding[kind] = (self.holding.get(kind, 0) - _holds(old) + _holds(new))
        self.pending += _is(new, "pending") - _is(old, "pending")
        if _is(old, "firing"):
            self._group(kind).add(old, -1)
        if _is(new, "firing"):
            self._group(kind).add(new, 1)

    def _group(self, kind):
        group = self.groups.get(kind)
        if group is None:
            group = self.groups[kind] = _Group()
        return group

    # -- questions ----------------------------------------------------------------

    def inhibited(self, kind):
        for source, targets in self.inhibit.items():
            if kind in targets and self.holding.get(source, 0) > 0:
                return True
        return False

    def pop_due(self, now, limit=None):
        """Every alert due by `now`, of every kind not inhibited, in (kind,
        key) order; each leaves the due index (the machine's next change to
        it puts it back with its new deadline).  `limit`: at most that many,
        the earliest deadlines of the first kinds (the rest stay due)."""
        kinds = [k for k in sorted(self.kinds) if not self.inhibited(k)]
        return self.store.pop_due(now, kinds, limit)

    def oldest(self, kind):
        """The earliest `since` among the kind's firing alerts (None if none)."""
        group = self.groups.get(kind)
        if group is None or group.count == 0:
            return None
        top = self.store.oldest_firing(kind)
        return None if top is None else top[0]

    def group_repeat_due(self, kind, now):
        """The key of the alert that carries the group's repeat (its oldest
        firing alert) when the kind's `repeat` has passed since any of its
        firing alerts last notified; else None."""
        group = self.groups.get(kind)
        if group is None or group.count == 0 or self.inhibited(kind):
            return None
        latest = self.store.latest_notified(kind)
        if latest is None or now < latest + self.kinds[kind]["repeat"]:
            return None
        return self.store.oldest_firing(kind)[1]

    def firing_count(self):
        return sum(g.count for g in self.groups.values())

    def firing_by_severity(self):
        critical = sum(g.critical for g in self.groups.values())
        return critical, self.firing_count() - critical


def _holds(rec):
    return 1 if rec is not None and rec["state"] in ("pending", "firing") else 0


def _is(rec, state):
    return 1 if rec is not None and rec["state"] == state else 0
