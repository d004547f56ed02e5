"""Where the firmware's alert store on flash (firmware/alert_store_flash.py)
keeps its bytes: the slot layout, the records as CBOR, the hash map from
(kind, key) to slot, the free list and each kind's heaps.  No rule of the
store here.  Portable: CPython and MicroPython.

A slot (SLOT bytes of `rec`): the head HEAD (flags, link: the next slot of
its hash chain, or of the free list once deleted; the ident's 32-bit hash;
next deadline, since, last_notified; the lengths of the two CBOR items;
its place + 1 in each of its kind's three heaps, 0: absent), then
[kind, key] and the record's other fields as a list in FIELDS order.
"""

import struct

from daozhang.agent.core import cbor
from daozhang.agent.core.errors import StorageError
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


class AlertSlots(HashChains):
    """The files of one alert store, wiped and opened empty."""

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

    def _live(self):
        for slot in range(self.hw):
            head = self._head(slot)
            if head[F_FLAGS] & LIVE:
                yield slot, head

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


def _storage(exc):
    return StorageError("the alert store on flash could not write: %s (file system full?)" % (exc,))
