"""The storage under the firmware's flash sale index (firmware/sale_index_flash.py):
the files, their header (dirty flag, checkpoint cursor, counters), slot
heads and bodies, free lists, and the hash chains with their buckets,
doubled when a map holds twice as many items.  No rule of the index here:
only where its bytes are.  Portable: CPython and MicroPython.
"""

import hashlib
import struct

from daozhang.agent.core import cbor
from daozhang.agent.core.settlement.settlement_checks import CHECKS
from daozhang.firmware.flash_chains import HashChains
from daozhang.firmware.flash_records import RecordFile, stable_hash
from daozhang.firmware.sale_index_heaps import Heaps

MAGIC = b"DZSI"
VERSION = 1
HEAD = "<4sBB16sqBIIiIiIiIIIiiIIIII"
HEAD_SIZE = 128
_HEAD_LEN = struct.calcsize(HEAD)
ENT = "<IHqqqiiiiiiiiIIIHH"
ENT_HEAD = struct.calcsize(ENT)
ENT_SIZE = 320
RES = "<IBiiiIqH"
RES_HEAD = struct.calcsize(RES)
RES_SIZE = 512
CAN = "<BiIH"
CAN_HEAD = struct.calcsize(CAN)
CAN_SIZE = 160
# entry head fields
E_N, E_FLAGS, E_SEQ, E_DEADLINE, E_SINCE = 0, 1, 2, 3, 4
E_NEXT_KEY, E_NEXT_RRN, E_NEXT_AUTH, E_FIRST_RES, E_LAST_RES = 8, 9, 10, 11, 12
E_H_KEY, E_H_RRN, E_H_AUTH, E_CHECKS, E_BODY = 13, 14, 15, 16, 17
LIVE, WATCHED, SEEN, SETTLED, HAS_SEQ, HAS_DEADLINE, CANCELLED = 1, 2, 4, 8, 16, 32, 64
_HAS_RRN, _HAS_AUTH = 128, 256
# result head fields
R_N, R_FLAGS, R_NEXT_REF, R_NEXT_TXN, R_NEXT_UNK, R_H, R_AT, R_BODY = range(8)
UNKNOWN = 2
# hash maps in `bkt`
M_KEY, M_RRN, M_AUTH, M_REF, M_CAN, M_ACK = range(6)
MAPS = 6
FIRST_LOG2 = 6
# header fields (self.h)
(H_MAGIC, H_VERSION, H_DIRTY, H_JOURNAL, H_CURSOR, H_LOG2, H_NEXT_N, H_ENT_HW, H_ENT_FREE,
 H_RES_HW, H_RES_FREE, H_CAN_HW, H_CAN_FREE, H_HEAP0, H_HEAP1, H_HEAP2, H_UNK_HEAD, H_UNK_TAIL,
 H_LIVE, H_RES_LIVE, H_CAN_LIVE, H_ACK_N, H_ACK_LIVE) = range(23)
_EMPTY = (MAGIC, VERSION, 0, bytes(16), -1, FIRST_LOG2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
_FILES = ("bkt", "ent", "res", "can", "heap", "ack")
# settlement-ack ids seen (the replay guard, SPEC 7.8): a ring of the last
# ACK_RING, each flags, chain link, hash, id, SHA-256 of the ack's bytes, at
ACK = "<BiI16s32sq"
ACK_SIZE = 72
ACK_RING = 2048


def _digest(data):
    return hashlib.sha256(data).digest()[:4]


def _rrn_hash(terminal_id, rrn):
    return stable_hash("%s\x1f%s" % (terminal_id or "", rrn))


def _auth_hash(auth_code, amount):
    return stable_hash("%s\x1f%s" % (auth_code, amount))


def _mask(checks):
    m = 0
    for name in checks:
        m |= 1 << CHECKS.index(name)
    return m


class FlashSlots(HashChains):
    """The files of one index, opened; started empty when missing, torn, stale or dirty."""

    def __init__(self, files, journal_id):
        self.files = files
        self.journal_id = bytes(journal_id)
        self.rebuilt = None
        f = {}
        for name in _FILES:
            f[name] = files.open(name)
        self.bkt = RecordFile(f["bkt"], 4)
        head = self.bkt.read(0, HEAD_SIZE)
        packed = head[:_HEAD_LEN]
        h = list(struct.unpack(HEAD, packed))
        torn = head[_HEAD_LEN:_HEAD_LEN + 4] != _digest(packed)
        if torn or h[H_MAGIC] != MAGIC or h[H_VERSION] != VERSION or h[H_JOURNAL] != self.journal_id \
                or h[H_DIRTY]:
            # Missing, torn, another format or journal, or cut while dirty: start empty.
            self.rebuilt = "missing" if h[H_MAGIC] != MAGIC else "dirty" if h[H_DIRTY] else \
                "torn" if torn else "stale"
            files.close()
            for name in _FILES:
                f[name] = files.open(name, fresh=True)
            self.bkt = RecordFile(f["bkt"], 4)
            h = list(_EMPTY)
            h[H_JOURNAL] = self.journal_id
        self.h = h
        self.ent = RecordFile(f["ent"], ENT_SIZE)
        self.res = RecordFile(f["res"], RES_SIZE)
        self.can = RecordFile(f["can"], CAN_SIZE)
        self.heaps = Heaps(RecordFile(f["heap"], 12), self)
        self.acks = RecordFile(f["ack"], ACK_SIZE)
        self.dirty = False
        if self.rebuilt is not None:
            self._write_head()
            self.checkpoint(None)
        self._unsee_all()

    bucket_base = HEAD_SIZE // 4       # the buckets follow the header in `bkt`

    @property
    def log2(self):
        return self.h[H_LOG2]

    # -- the header, dirty and clean --------------------------------------------

    @property
    def cursor(self):
        return None if self.h[H_CURSOR] < 0 else self.h[H_CURSOR]

    def _write_head(self):
        packed = struct.pack(HEAD, *self.h)
        self.bkt.write(0, packed + _digest(packed))

    def _touch(self):
        if not self.dirty:
            self.dirty = True
            self.h[H_DIRTY] = 1
            self._write_head()
            self.bkt.flush()
            self.files.sync()

    def checkpoint(self, cursor):
        """Everything so far is durable and reflects the journal up to `cursor`."""
        for recs in (self.ent, self.res, self.can, self.heaps.file, self.acks):
            recs.flush()
        self.h[H_DIRTY] = 0
        self.h[H_CURSOR] = -1 if cursor is None else cursor
        self._write_head()
        self.bkt.flush()
        self.files.sync()
        self.dirty = False

    def close(self):
        self.files.close()

    def _unsee_all(self):
        """Overdue observations are not journaled: after a start every
        overdue sale is observed again (as the SQLite index does)."""
        for slot in range(self.h[H_ENT_HW]):
            head = self._ent_head(slot)
            if head[E_FLAGS] & (LIVE | WATCHED | SEEN) == LIVE | WATCHED | SEEN:
                self._touch()
                head[E_FLAGS] &= ~SEEN
                self._put_ent_head(slot, head)
                self.heaps.push(0, slot)

    # -- slots ---------------------------------------------------------------------

    def _ent_head(self, slot):
        return list(struct.unpack(ENT, self.ent.read(slot, ENT_HEAD)))

    def _put_ent_head(self, slot, head):
        self.ent.write(slot, struct.pack(ENT, *head))

    def _ent_body(self, slot, head):
        return cbor.loads(self.ent.read(slot, ENT_HEAD + head[E_BODY])[ENT_HEAD:])

    def ent_key(self, slot, head):
        return self._ent_body(slot, head)[0]

    def _res_head(self, slot):
        return list(struct.unpack(RES, self.res.read(slot, RES_HEAD)))

    def _put_res_head(self, slot, head):
        self.res.write(slot, struct.pack(RES, *head))

    def _res_body(self, slot, head):
        return cbor.loads(self.res.read(slot, RES_HEAD + head[R_BODY])[RES_HEAD:])

    def _can_head(self, slot):
        return list(struct.unpack(CAN, self.can.read(slot, CAN_HEAD)))

    def _alloc(self, hw_field, free_field, read_head, next_field):
        free = self.h[free_field]
        if free:
            self.h[free_field] = read_head(free - 1)[next_field]
            return free - 1
        self.h[hw_field] += 1
        return self.h[hw_field] - 1

    # -- hash chains (links are slot + 1; 0 ends a chain) ----------------------------

    def _ent_chain(self, m, h, field, hfield):
        """Slots (and heads) of live entries in map m's chain for hash h."""
        link = self._chain_head(m, h)
        while link:
            head = self._ent_head(link - 1)
            if head[hfield] == h:
                yield link - 1, head
            link = head[field]

    def _find(self, key):
        h = stable_hash(key)
        for slot, head in self._ent_chain(M_KEY, h, E_NEXT_KEY, E_H_KEY):
            if head[E_FLAGS] & LIVE and self.ent_key(slot, head) == key:
                return slot, head
        return None, None

    def _find_res(self, ref):
        h = stable_hash(ref)
        link = self._chain_head(M_REF, h)
        while link:
            head = self._res_head(link - 1)
            if head[R_H] == h:
                body = self._res_body(link - 1, head)
                if body["acquirer_ref"] == ref:
                    return link - 1, head, body
            link = head[R_NEXT_REF]
        return None, None, None

    def _find_can(self, original):
        h = stable_hash(original)
        link = self._chain_head(M_CAN, h)
        while link:
            head = self._can_head(link - 1)
            if head[2] == h:
                body = cbor.loads(self.can.read(link - 1, CAN_HEAD + head[3])[CAN_HEAD:])
                if body[0] == original:
                    return link - 1, head, body
            link = head[1]
        return None, None, None

    def _grow(self):
        """Double the buckets once a map holds twice as many items: chains stay short."""
        if max(self.h[H_LIVE], self.h[H_RES_LIVE], self.h[H_CAN_LIVE], self.h[H_ACK_LIVE]) <= 2 << self.h[H_LOG2]:
            return
        self.h[H_LOG2] += 1
        self.bkt.write(HEAD_SIZE // 4, bytes(MAPS * 4 << self.h[H_LOG2]))
        for slot in range(self.h[H_ENT_HW]):
            head = self._ent_head(slot)
            if head[E_FLAGS] & LIVE:
                self._chain_in(slot, head)
                self._put_ent_head(slot, head)
        for slot in range(self.h[H_RES_HW]):
            head = self._res_head(slot)
            if head[R_FLAGS] & LIVE:
                head[R_NEXT_REF] = self._push_link(M_REF, head[R_H], slot)
                self._put_res_head(slot, head)
        for slot in range(self.h[H_CAN_HW]):
            head = self._can_head(slot)
            if head[0] & LIVE:
                head[1] = self._push_link(M_CAN, head[2], slot)
                self.can.write(slot, struct.pack(CAN, *head))
        for slot in range(self.h[H_ACK_LIVE]):
            head = self._ack_head(slot)
            if head[0] & LIVE:
                head[1] = self._push_link(M_ACK, head[2], slot)
                self.acks.write(slot, struct.pack(ACK, *head))

    def _ack_head(self, slot):
        return list(struct.unpack(ACK, self.acks.read(slot, struct.calcsize(ACK))))

    def _chain_in(self, slot, head):
        flags = head[E_FLAGS]
        head[E_NEXT_KEY] = self._push_link(M_KEY, head[E_H_KEY], slot)
        head[E_NEXT_RRN] = self._push_link(M_RRN, head[E_H_RRN], slot) if flags & _HAS_RRN else 0
        head[E_NEXT_AUTH] = self._push_link(M_AUTH, head[E_H_AUTH], slot) if flags & _HAS_AUTH else 0

