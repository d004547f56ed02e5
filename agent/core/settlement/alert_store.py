"""Where the alert machine (agent/core/settlement/alerts.py) keeps its records, and the
per-record orders it asks of them: which alerts are due by a time (the
due-time index) and the oldest firing alert of a kind.  Portable core.

`MemoryAlertStore` (here): a dict of records plus one heap per kind of
(next deadline, key) and of (since, key) for firing alerts; stale heap
entries are skipped when met ("lazy deletion") and a heap that holds more
than twice its live entries is rebuilt, so each put costs O(log n)
amortised.  For tests, MicroPython and `daozhang agent alerts
--from-journal`.  The agent daemon uses agent/alert_store_sqlite.py: the
same face over a table beside the journal (indexed by deadline and by
since), so its memory stays flat however many alerts an outage raises.

The face: the read side of a dict keyed by (kind, key) (get, [], in, len,
iteration in insertion order, items, values) plus
    put(ident, record, due)     insert or replace; `due` None: nothing to do
    delete(ident)
    pop_due(now, kinds, limit=None)
                                idents of `kinds` due by `now`, sorted; each
                                loses its deadline until its next put.  With
                                `limit`, at most that many: kind by kind,
                                earliest deadline first (among equal
                                deadlines the store's choice); the rest stay due
    oldest_firing(kind)         (since, key) of the firing alert with the
                                smallest `since` (then key), or None
    latest_notified(kind)       the largest `last_notified` among firing alerts
"""

import heapq


class DictReads:
    """The rest of a dict's read side over get() and items(), for the stores
    that are not dicts (agent/alert_store_sqlite.py, firmware/alert_store_flash.py)."""

    def __getitem__(self, ident):
        rec = self.get(ident)
        if rec is None:
            raise KeyError(ident)
        return rec

    def __contains__(self, ident):
        return self.get(ident) is not None

    def values(self):
        for _, rec in self.items():
            yield rec


class MemoryAlertStore(dict):
    def __init__(self):
        super().__init__()
        self.due = {}          # ident -> its live next deadline
        self.unpushed = set()  # idents whose deadline is not in a heap yet
        self.heaps = {}        # kind -> [(deadline, key), ...]
        self.oldest = {}       # kind -> [(since, key), ...] of firing alerts
        self.latest = {}       # kind -> [(-last_notified, key), ...] of firing alerts
        self.firing = {}       # kind -> how many firing (bounds the oldest heap)

    def put(self, ident, rec, due):
        old = self.get(ident)
        self[ident] = rec
        self._track(ident, old, rec, due)

    def delete(self, ident):
        old = self.pop(ident, None)
        self._track(ident, old, None, None)

    def _track(self, ident, old, new, due):
        kind = ident[0]
        was = old is not None and old["state"] == "firing"
        now = new is not None and new["state"] == "firing"
        self.firing[kind] = self.firing.get(kind, 0) + now - was
        if now and (not was or old["since"] != new["since"]):
            self._push(self.oldest, kind, new["since"], ident[1], "since", 1)
        if now and (not was or old["last_notified"] != new["last_notified"]):
            self._push(self.latest, kind, new["last_notified"], ident[1], "last_notified", -1)
        if due is None:
            self.due.pop(ident, None)
        elif self.due.get(ident) != due:
            self.due[ident] = due
            # Pushed at the next pop_due: an alert that moves several times
            # in one event (pending, firing, escalated) leaves one heap entry.
            self.unpushed.add(ident)

    def _push(self, heaps, kind, value, key, field, sign):
        heap = heaps.setdefault(kind, [])
        heapq.heappush(heap, (sign * value, key))
        if len(heap) > 2 * self.firing[kind] + 64:
            # Amortised: rebuilt from the firing records once half is stale.
            heap = [(sign * r[field], k) for (kd, k), r in self.items()
                    if kd == kind and r["state"] == "firing"]
            heapq.heapify(heap)
            heaps[kind] = heap

    def _top(self, heaps, kind, field, sign):
        heap = heaps.get(kind)
        while heap:
            value, key = heap[0]
            rec = self.get((kind, key))
            if rec is not None and rec["state"] == "firing" and sign * rec[field] == value:
                return sign * value, key
            heapq.heappop(heap)
        return None

    def _flush(self):
        for ident in self.unpushed:
            due = self.due.get(ident)
            if due is None:
                continue
            heap = self.heaps.setdefault(ident[0], [])
            heapq.heappush(heap, (due, ident[1]))
            if len(heap) > 2 * len(self.due) + 64:
                # Amortised: the heap grew past its live entries since the last rebuild.
                heap = [(d, i[1]) for i, d in self.due.items() if i[0] == ident[0]]
                heapq.heapify(heap)
                self.heaps[ident[0]] = heap
        self.unpushed = set()

    def pop_due(self, now, kinds, limit=None):
        self._flush()
        out = []
        for kind in kinds:
            heap = self.heaps.get(kind)
            while heap and heap[0][0] <= now and (limit is None or len(out) < limit):
                due, key = heapq.heappop(heap)
                ident = (kind, key)
                if self.due.get(ident) == due:
                    del self.due[ident]
                    out.append(ident)
        out.sort()
        return out

    def has_due(self, ident):
        return ident in self.due

    def oldest_firing(self, kind):
        return self._top(self.oldest, kind, "since", 1)

    def latest_notified(self, kind):
        top = self._top(self.latest, kind, "last_notified", -1)
        return None if top is None else top[0]

    def close(self):
        pass
