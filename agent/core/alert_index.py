"""What the alert machine (agent/core/alerts.py) keeps beside its records so
that no event costs more as alerts pile up (docs/DESIGN.md "Alerts at
outage scale").  Portable core: heapq exists on MicroPython too.

Three derived views, each updated on every record change (`changed(ident,
old, new)`), never recomputed by walking the alerts:

- holding: how many alerts of each inhibition source kind are pending or
  firing; a kind is inhibited while any of its sources counts above zero.
  O(1) per change and per question.
- due: one heap per kind of (next deadline, key).  An alert's next deadline
  is the earliest of its `for` (pending), ttl, escalation and repeat times
  (firing); a resolved alert has none.  A heap entry whose deadline no
  longer matches the alert's is stale and skipped when popped ("lazy
  deletion"); a heap that holds more than twice its live entries is rebuilt,
  so the amortised cost per change stays O(log n).  Per kind, so a tick
  never pops (and pushes back) the alerts of an inhibited kind: an outage's
  100,000 held overdue sales cost a tick nothing.
- groups: per kind, the firing alerts' count, how many are critical, the
  sum of their amounts per currency, and a lazy heap of (since, key) for
  the oldest: the display's grouped lines in O(kinds), not O(alerts).
"""

import heapq


def next_deadline(rec, spec):
    """When the machine next has something to do for this record, or None."""
    state = rec["state"]
    if state == "pending":
        return rec["pending_since"] + spec["for"]
    if state != "firing":
        return None
    due = rec["last_notified"] + spec["repeat"]
    ttl = spec.get("ttl")
    if ttl is not None and rec["fired_at"] + ttl < due:
        due = rec["fired_at"] + ttl
    if rec["severity"] != "critical" and rec["escalate_at"] is not None \
            and rec["escalate_at"] < due:
        due = rec["escalate_at"]
    return due


class _Group:
    """The firing alerts of one kind, summed."""

    def __init__(self):
        self.count = 0
        self.critical = 0
        self.amounts = {}   # currency -> [sum of amounts, alerts with an amount]
        self.oldest = []    # heap of (since, key); stale entries skipped

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
    def __init__(self, kinds, inhibit, records):
        self.kinds = kinds
        self.inhibit = inhibit
        self.records = records                  # the machine's (kind, key) -> record
        self.holding = {}                       # source kind -> pending or firing count
        self.due = {}                           # (kind, key) -> its live next deadline
        self.unpushed = set()                   # idents whose deadline is not in a heap yet
        self.heaps = {}                         # kind -> [(deadline, key), ...]
        self.groups = {}                        # kind -> _Group of its firing alerts
        self.pending = 0
        for source in inhibit:
            spec = kinds.get(source)
            if spec is not None and spec.get("ttl") is not None:
                # A source that could expire inside a tick would lift its
                # inhibition halfway through that tick's visits.
                raise ValueError("inhibition source %r must have no ttl" % source)

    # -- updates -----------------------------------------------------------------

    def changed(self, ident, old, new):
        """Record `ident` went from `old` to `new` (either may be None)."""
        kind = ident[0]
        if kind in self.inhibit:
            self.holding[kind] = (self.holding.get(kind, 0) - _holds(old) + _holds(new))
        self.pending += _is(new, "pending") - _is(old, "pending")
        if _is(old, "firing"):
            self._group(kind).add(old, -1)
        if _is(new, "firing"):
            group = self._group(kind)
            group.add(new, 1)
            if not _is(old, "firing") or old["since"] != new["since"]:
                heapq.heappush(group.oldest, (new["since"], ident[1]))
                if len(group.oldest) > 2 * group.count + 64:
                    self._rebuild_oldest(kind, group)
        due = next_deadline(new, self.kinds[kind]) if new is not None else None
        if due is None:
            self.due.pop(ident, None)
        elif self.due.get(ident) != due:
            self.due[ident] = due
            # Pushed at the next pop_due: an alert that moves several times
            # in one event (pending, firing, escalated) leaves one heap entry.
            self.unpushed.add(ident)

    def _flush(self):
        for ident in self.unpushed:
            due = self.due.get(ident)
            if due is None:
                continue
            kind = ident[0]
            heap = self.heaps.get(kind)
            if heap is None:
                heap = self.heaps[kind] = []
            heapq.heappush(heap, (due, ident[1]))
            if len(heap) > 2 * len(self.due) + 64:
                self._rebuild_due(kind)
        self.unpushed = set()

    def _group(self, kind):
        group = self.groups.get(kind)
        if group is None:
            group = self.groups[kind] = _Group()
        return group

    def _rebuild_due(self, kind):
        # Amortised: the heap grew by more than the live count since the last rebuild.
        heap = [(due, ident[1]) for ident, due in self.due.items() if ident[0] == kind]
        heapq.heapify(heap)
        self.heaps[kind] = heap

    def _rebuild_oldest(self, kind, group):
        heap = [(r["since"], k) for (kd, k), r in self.records.items()
                if kd == kind and r["state"] == "firing"]
        heapq.heapify(heap)
        group.oldest = heap

    # -- questions ----------------------------------------------------------------

    def inhibited(self, kind):
        for source, targets in self.inhibit.items():
            if kind in targets and self.holding.get(source, 0) > 0:
                return True
        return False

    def pop_due(self, now):
        """Every alert due by `now`, of every kind not inhibited, in (kind,
        key) order; each leaves the due index (the machine's next change to
        it puts it back with its new deadline)."""
        self._flush()
        out = []
        for kind in sorted(self.heaps):
            if self.inhibited(kind):
                continue
            heap = self.heaps[kind]
            while heap and heap[0][0] <= now:
                due, key = heapq.heappop(heap)
                ident = (kind, key)
                if self.due.get(ident) == due:
                    del self.due[ident]
                    out.append(ident)
        out.sort()
        return out

    def oldest(self, kind):
        """The earliest `since` among the kind's firing alerts (None if none)."""
        group = self.groups.get(kind)
        if group is None or group.count == 0:
            return None
        heap = group.oldest
        while heap:
            since, key = heap[0]
            rec = self.records.get((kind, key))
            if rec is not None and rec["state"] == "firing" and rec["since"] == since:
                break
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def firing_count(self):
        return sum(g.count for g in self.groups.values())

    def firing_by_severity(self):
        critical = sum(g.critical for g in self.groups.values())
        return critical, self.firing_count() - critical


def _holds(rec):
    return 1 if rec is not None and rec["state"] in ("pending", "firing") else 0


def _is(rec, state):
    return 1 if rec is not None and rec["state"] == state else 0
