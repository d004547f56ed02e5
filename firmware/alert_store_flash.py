"""The alert machine's records on the board's flash: the face of
agent/core/settlement/alert_store.py's MemoryAlertStore (the read side of a
dict keyed by (kind, key), put, delete, pop_due, has_due, oldest_firing,
latest_notified, close), with nothing per alert in RAM.  A terminal's heap
(96 KiB) cannot hold an acquirer outage's overdue alerts at some 430 bytes
each; the Linux daemon keeps them in SQLite (agent/alert_store_sqlite.py),
the board here (docs/DESIGN.md, "The alert store on flash").

    store = FlashAlertStore(DirFiles("/journal.dzj.alerts"))   # MemoryFiles() in tests
    machine = AlertMachine(currency, store=store)

Files (firmware/flash_records.py's fixed-size records, laid out by
firmware/alert_store_slots.py):

- `rec`: one SLOT-byte slot per alert: a head (flags, hash-chain link,
  32-bit hash of the ident, next deadline, since, last_notified, the two
  body lengths, its places in its kind's three heaps) and two CBOR items:
  [kind, key], then the record's other fields as a list in FIELDS order.
  A deleted slot goes on a free list chained through its link field, and
  is reused first: the file grows with the most alerts held at once.
- `map`: hash buckets (firmware/flash_chains.py) from (kind, key) to slot,
  doubled once the store holds twice as many alerts as buckets.
- `h<n>`: one per kind seen, three binary heaps of slots
  (firmware/flash_heaps.py), each slot keeping its place in each:
  0 due (next deadline), 1 firing by (since, key), 2 firing by
  last_notified, largest first.  A change moves the slot in the heaps
  whose value changed: no stale entries, no rebuilds.

Cost: put, delete, has_due, get, oldest_firing and latest_notified are
O(log n) slot reads and writes (a hash chain of about two, a heap path;
`since` ties read both keys, so the oldest is the smallest key among equal
`since`, as MemoryAlertStore's (since, key) heap gives, and the group's
repeat is carried by the same alert); pop_due O((k + 1) log n) for k due.
Iteration (views, tests) and a doubling walk every slot.  RAM: the file
objects, a few counters and three heap sizes per kind.

Derived data, no crash consistency: the files are wiped when the store is
created (at every boot) and the terminal rebuilds the records from the
journal's alert records (firmware/index_replay.py restore_alerts), as the
daemon rebuilds its SQLite store when the file is missing.  Capacity: the files grow as alerts arrive
(512 B an alert); a full file system (or any OSError of the files) raises
StorageError, never an alert dropped silently, and the writes that grow a
file come first, so a new alert refused leaves the store as it was.  A record longer than a slot raises
LocalError naming its size, before anything changes (every record the
machine makes with a 64-character key and ref fits: SLOT is sized for it).
Portable: CPython and MicroPython.
"""

import struct

from daozhang.agent.core.errors import LocalError
from daozhang.agent.core.settlement.alert_store import DictReads
from daozhang.firmware.alert_store_slots import (BODY_MAX, DUE, F_BLEN, F_DUE, F_HASH, F_KLEN, F_NEXT,
                                                 F_NOTIFIED, F_SINCE, FIRST_LOG2, HEAD_LEN, LIVE, NOTIFIED,
                                                 SINCE, SLOT, AlertSlots, _encode, _hash, _storage)

__all__ = ("FlashAlertStore", "BODY_MAX", "SLOT", "FIRST_LOG2")


class FlashAlertStore(AlertSlots, DictReads):
    """The alert store's face over AlertSlots (see the module's docstring)."""

    # -- the read side of a dict ----------------------------------------------------

    def get(self, ident, default=None):
        try:
            slot, head = self._find(ident)
            return default if slot is None else self._record(slot, head)
        except OSError as exc:
            raise _storage(exc)

    def __len__(self):
        return self.count

    def __iter__(self):
        for slot, head in self._live():
            yield self._ident(slot, head)

    def items(self):
        for slot, head in self._live():
            yield self._ident(slot, head), self._record(slot, head)

    # -- changes ----------------------------------------------------------------------

    def put(self, ident, rec, due):
        ident_bytes, rest = _encode(ident, rec)
        size = len(ident_bytes) + len(rest)
        if size > BODY_MAX:
            raise LocalError("alert %s/%s: its record is %d bytes, a flash alert slot holds %d"
                             % (ident[0], ident[1], size, BODY_MAX))
        firing = rec["state"] == "firing"
        if firing and not (isinstance(rec["since"], int) and isinstance(rec["last_notified"], int)):
            raise LocalError("alert %s/%s: a firing record needs integer since and last_notified, got %r, %r"
                             % (ident[0], ident[1], rec["since"], rec["last_notified"]))
        since, notified = (rec["since"], rec["last_notified"]) if firing else (None, None)
        try:
            self._put(ident, ident_bytes + rest, len(ident_bytes), due, since, notified)
        except OSError as exc:
            raise _storage(exc)

    def _put(self, ident, body, klen, due, since, notified):
        heaps = self._kind(ident[0])
        slot, head = self._find(ident)
        if slot is None:
            if self.count >= 2 << self.log2:
                self._grow()
            # The writes that grow a file (where a full file system fails)
            # come first: refused, the store is as it was.
            if not self.free:
                self.rec.write(self.hw, bytes(SLOT))
            n = max(heaps.sizes)
            if (n + 1) * 12 > heaps.file.length:
                heaps.file.write(n, bytes(12))
            slot = self._alloc()
            h = _hash(ident)
            head = [LIVE, self._push_link(0, h, slot), h, 0, 0, 0, 0, 0, 0, 0, 0]
            self.count += 1
        # Out of each order whose value changes (a removal compares nothing
        # against the slot itself), in again once the head holds the new value.
        push = []
        for which, field, value in ((DUE, F_DUE, due), (SINCE, F_SINCE, since),
                                    (NOTIFIED, F_NOTIFIED, notified)):
            held = heaps.holds(which, head)
            keep = held and value is not None and value == head[field]
            if held and not keep:
                heaps.remove(which, slot)
            if value is not None:
                head[field] = value
                if not keep:
                    push.append(which)
        head[F_KLEN], head[F_BLEN] = klen, len(body) - klen
        self._put_head(slot, head)
        self.rec.write(slot, body, HEAD_LEN)
        for which in push:
            heaps.push(which, slot)

    def delete(self, ident):
        try:
            slot, head = self._find(ident)
            if slot is None:
                return
            heaps = self.heaps[ident[0]]
            for which in (DUE, SINCE, NOTIFIED):
                if heaps.holds(which, head):
                    heaps.remove(which, slot)
            self._unlink(0, head[F_HASH], slot, self._head, self._put_head, F_NEXT)
            self.rec.write(slot, struct.pack("<Bi", 0, self.free))     # on the free list
            self.free = slot + 1
            self.count -= 1
        except OSError as exc:
            raise _storage(exc)

    # -- the orders -------------------------------------------------------------------

    def pop_due(self, now, kinds, limit=None):
        out = []
        try:
            for kind in kinds:
                heaps = self.heaps.get(kind)
                while heaps is not None and (limit is None or len(out) < limit):
                    slot = heaps.top(DUE)
                    if slot is None:
                        break
                    head = self._head(slot)
                    if head[F_DUE] > now:
                        break
                    heaps.remove(DUE, slot)                 # loses its deadline until its next put
                    out.append(self._ident(slot, head))
        except OSError as exc:
            raise _storage(exc)
        out.sort()
        return out

    def has_due(self, ident):
        slot, head = self._find(ident)
        return slot is not None and self.heaps[ident[0]].holds(DUE, head)

    def _top(self, kind, which):
        heaps = self.heaps.get(kind)
        slot = None if heaps is None else heaps.top(which)
        return None if slot is None else (slot, self._head(slot))

    def oldest_firing(self, kind):
        top = self._top(kind, SINCE)
        return None if top is None else (top[1][F_SINCE], self._ident(top[0], top[1])[1])

    def latest_notified(self, kind):
        top = self._top(kind, NOTIFIED)
        return None if top is None else top[1][F_NOTIFIED]

    def close(self):
        self.files.close()
