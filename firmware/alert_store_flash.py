"""The alert machine's records on the board's flash: the face of
agent/core/settlement/alert_store.py's MemoryAlertStore (the read side of a
dict keyed by (kind, key), put, delete, pop_due, has_due, oldest_firing,
latest_notified, close), with nothing per alert in RAM.  A terminal's heap
(96 KiB) cannot hold an acquirer outage's overdue alerts at some 450 bytes
each; the Linux daemon keeps them in SQLite (agent/alert_store_sqlite.py),
the board here (docs/DESIGN.md, "The alert store on flash").

    store = FlashAlertStore(DirFiles("/journal.dzj.alerts"))   # MemoryFiles() in tests
    machine = AlertMachine(currency, store=store)

Files (firmware/flash_records.py's fixed-size records):

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
created (at every boot), as the board's machine always started empty: the
watchdog's first tick observes every overdue sale again
(firmware/index_replay.py).  Capacity: the files grow as alerts arrive; a
full file system (or any OSError of the files) raises StorageError, so an
alert is never dropped silently.  A record longer than a slot raises
LocalError naming its size, before anything changes (every record the
machine makes with a 64-character key and ref fits: SLOT is sized for it).
Portable: CPython and MicroPython.
"""

import struct

from daozhang.agent.core import cbor
from daozhang.agent.core.errors import LocalError, StorageError
from daozhang.agent.core.settlement.alerts import FIELDS
from daozhang.firmware.flash_chains import HashChains
from daozhang.firmware.flash_heaps import SlotHeaps
from daozhang.firmware.flash_records import RecordFile, stable_hash

HEAD = "<BiIqqqHHiii"
HEAD_LEN = struct.calcsize(HEAD)
VALUES = "<BiIqqqHH"                    # the head without its heap places
PLACE_AT = struct.calcsize(VALUES)
SLOT = 512
BODY_MAX = SLOT - HEAD_LEN
F_FLAGS, F_NEXT, F_HASH, F_DUE, F_SINCE, F_NOTIFIED, F_KLEN, F_BLEN, F_PLACE = range(9)
LIVE = 1
DUE, SINCE, NOTIFIED = 0, 1, 2          # the heaps
FIRST_LOG2 = 6
_REST = FIELDS[2:]                      # after kind and key


def _hash(ident):
    return stable_hash("%s\x1f%s" % (ident[0], ident[1]))


def _encode(ident, rec):
    """[kind, key] and the rest; a record with other fields than the
    machine's keeps them all (as a map)."""
    compact = len(rec) == len(FIELDS) and rec.get("kind") == ident[0] and rec.get("key") == ident[1]
    if compact:
        for name in _REST:
            if name not in rec:
                compact = False
                break
    rest = [rec[name] for name in _REST] if compact else rec
    return cbor.dumps([ident[0], ident[1]]), cbor.dumps(rest)


class _KindHeaps(SlotHeaps):
    """One kind's three orders, in its own file of 12-byte cells."""

    def __init__(self, store, file):
        SlotHeaps.__init__(self, file)
        self.store = store
        self.sizes = [0, 0, 0]

    def _size(self, which):
        return self.sizes[which]

    def _set_size(self, which, n):
        self.sizes[which] = n

    def _head(self, slot):
        return self.store._head(slot)

    def _place(self, which, head):
        return head[F_PLACE + which]

    def _set_place(self, which, slot, place):
        self.store.rec.write(slot, struct.pack("<i", place), PLACE_AT + 4 * which)

    def _less(self, which, a, ha, b, hb):
        if which == DUE:
            return ha[F_DUE] < hb[F_DUE]
        if which == NOTIFIED:
            return ha[F_NOTIFIED] > hb[F_NOTIFIED]
        if ha[F_SINCE] != hb[F_SINCE]:
            return ha[F_SINCE] < hb[F_SINCE]
        return self.store._ident(a, ha)[1] < self.store._ident(b, hb)[1]


class FlashAlertStore(HashChains):
    bucket_base = 0

    def __init__(self, files, log2=FIRST_LOG2):
        self.files = files
        try:
            files.clear()                       # derived: empty at every start
            self.rec = RecordFile(files.open("rec", fresh=True), SLOT)
            self.bkt = RecordFile(files.open("map", fresh=True), 4)
        except OSError as exc:
            raise _storage(exc)
        self.log2 = log2
        self.hw = 0             # slots ever used
        self.free = 0           # first free slot + 1; the rest chained through F_NEXT
        self.count = 0
        self.heaps = {}         # kind -> _KindHeaps

    # -- slots ----------------------------------------------------------------------

    def _head(self, slot):
        return list(struct.unpack(HEAD, self.rec.read(slot, HEAD_LEN)))

    def _put_head(self, slot, head):
        self.rec.write(slot, struct.pack(VALUES, *head[:F_PLACE]))     # places are the heaps'

    def _ident(self, slot, head):
        kind, key = cbor.loads(self.rec.read(slot, HEAD_LEN + head[F_KLEN])[HEAD_LEN:])
        return kind, key

    def _record(self, slot, head):
        data = self.rec.read(slot, HEAD_LEN + head[F_KLEN] + head[F_BLEN])
        kind, key = cbor.loads(data[HEAD_LEN:HEAD_LEN + head[F_KLEN]])
        rest = cbor.loads(data[HEAD_LEN + head[F_KLEN]:])
        if isinstance(rest, dict):
            return rest
        rec = {"kind": kind, "key": key}
        for i in range(len(_REST)):
            rec[_REST[i]] = rest[i]
        return rec

    def _find(self, ident):
        h = _hash(ident)
        link = self._chain_head(0, h)
        while link:
            head = self._head(link - 1)
            if head[F_HASH] == h and self._ident(link - 1, head) == (ident[0], ident[1]):
                return link - 1, head
            link = head[F_NEXT]
        return None, None

    def _kind(self, kind):
        heaps = self.heaps.get(kind)
        if heaps is None:
            name = "h%d" % len(self.heaps)
            heaps = self.heaps[kind] = _KindHeaps(self, RecordFile(self.files.open(name, fresh=True), 12))
        return heaps

    # -- the read side of a dict ----------------------------------------------------

    def get(self, ident, default=None):
        try:
            slot, head = self._find(ident)
            return default if slot is None else self._record(slot, head)
        except OSError as exc:
            raise _storage(exc)

    def __getitem__(self, ident):
        rec = self.get(ident)
        if rec is None:
            raise KeyError(ident)
        return rec

    def __contains__(self, ident):
        return self.get(ident) is not None

    def __len__(self):
        return self.count

    def _live(self):
        for slot in range(self.hw):
            head = self._head(slot)
            if head[F_FLAGS] & LIVE:
                yield slot, head

    def __iter__(self):
        for slot, head in self._live():
            yield self._ident(slot, head)

    def items(self):
        for slot, head in self._live():
            yield self._ident(slot, head), self._record(slot, head)

    def values(self):
        for slot, head in self._live():
            yield self._record(slot, head)

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

    def _alloc(self):
        if self.free:
            slot = self.free - 1
            self.free = self._head(slot)[F_NEXT]
            return slot
        self.hw += 1
        return self.hw - 1

    def _grow(self):
        """Double the buckets and re-chain every alert: O(n) once per
        doubling, amortised O(1) a put.  The file grows first."""
        self.bkt.write((2 << self.log2) - 1, bytes(4))
        self.log2 += 1
        self.bkt.write(0, bytes(4 << self.log2))
        for slot, head in self._live():
            head[F_NEXT] = self._push_link(0, head[F_HASH], slot)
            self._put_head(slot, head)

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

    def pop_due(self, now, kinds):
        out = []
        try:
            for kind in kinds:
                heaps = self.heaps.get(kind)
                while heaps is not None:
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


def _storage(exc):
    return StorageError("the alert store on flash could not write: %s (file system full?)" % (exc,))
