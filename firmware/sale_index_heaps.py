"""The flash sale index's three ordered sets (firmware/sale_index_flash.py):
binary min-heaps of entry slots, all three in one file of 12-byte records
(record i holds element i of heap 0, 1 and 2), each slot keeping its place
in each heap in its own head so any element is removed in O(log n).

    0 due    watched sales not yet seen overdue, by (deadline, seq, key)
    1 floor  transactions with a seq and no settlement yet, by seq
    2 since  every transaction, by since (deadline, else time)

walk(which, go) yields (slot, head) in ascending order while go(head)
holds, best-first: a small frontier in RAM (what is yielded, plus its
children), never the whole heap.  Portable: CPython and MicroPython.
"""

import heapq
import struct

_POS = 5            # head field of heap 0's place (+ which); a place is index + 1, 0: absent
_POS_AT = 30        # its byte offset in the entry head (struct "<IHqqq": 4 + 2 + 24)
_SIZE = 13          # index header field of heap 0's size (+ which)
_SEQ, _DEADLINE, _SINCE = 2, 3, 4


class Heaps:
    def __init__(self, file, index):
        self.file = file
        self.index = index

    def holds(self, which, head):
        return head[_POS + which] != 0

    def _size(self, which):
        return self.index.h[_SIZE + which]

    def _cell(self, which, i):
        return struct.unpack("<i", self.file.read(i)[which * 4:which * 4 + 4])[0] - 1

    def _put(self, which, i, slot):
        self.file.write(i, struct.pack("<i", slot + 1), which * 4)
        self.index.ent.write(slot, struct.pack("<i", i + 1), _POS_AT + 4 * which)

    def _head(self, slot):
        return self.index._ent_head(slot)

    def _less(self, which, a, ha, b, hb):
        if which == 0:
            ka, kb = (ha[_DEADLINE], ha[_SEQ]), (hb[_DEADLINE], hb[_SEQ])
            if ka == kb:
                return self.index.ent_key(a, ha) < self.index.ent_key(b, hb)
            return ka < kb
        field = _SEQ if which == 1 else _SINCE
        return ha[field] < hb[field]

    def _full_key(self, which, slot, head):
        if which == 0:
            return (head[_DEADLINE], head[_SEQ], self.index.ent_key(slot, head))
        return (head[_SEQ if which == 1 else _SINCE],)

    def push(self, which, slot):
        n = self._size(which)
        self.index.h[_SIZE + which] = n + 1
        self._up(which, n, slot, self._head(slot))

    def remove(self, which, slot):
        head = self._head(slot)
        i = head[_POS + which] - 1
        last = self._size(which) - 1
        self.index.h[_SIZE + which] = last
        self.index.ent.write(slot, struct.pack("<i", 0), _POS_AT + 4 * which)
        if i == last:
            return
        moved = self._cell(which, last)
        mhead = self._head(moved)
        if i > 0:
            parent = self._cell(which, (i - 1) >> 1)
            if self._less(which, moved, mhead, parent, self._head(parent)):
                self._up(which, i, moved, mhead)
                return
        self._down(which, i, moved, mhead)

    def _up(self, which, i, slot, head):
        while i > 0:
            p = (i - 1) >> 1
            ps = self._cell(which, p)
            if not self._less(which, slot, head, ps, self._head(ps)):
                break
            self._put(which, i, ps)
            i = p
        self._put(which, i, slot)

    def _down(self, which, i, slot, head):
        n = self._size(which)
        while True:
            c = 2 * i + 1
            if c >= n:
                break
            cs = self._cell(which, c)
            ch = self._head(cs)
            if c + 1 < n:
                rs = self._cell(which, c + 1)
                rh = self._head(rs)
                if self._less(which, rs, rh, cs, ch):
                    c, cs, ch = c + 1, rs, rh
            if not self._less(which, cs, ch, slot, head):
                break
            self._put(which, i, cs)
            i = c
        self._put(which, i, slot)

    def walk(self, which, go):
        n = self._size(which)
        if n == 0:
            return
        frontier = []

        def visit(i):
            slot = self._cell(which, i)
            head = self._head(slot)
            heapq.heappush(frontier, (self._full_key(which, slot, head), i, slot, head))

        visit(0)
        while frontier:
            _, i, slot, head = heapq.heappop(frontier)
            if not go(head):
                continue                     # its children sort after it: none qualifies
            yield slot, head
            for c in (2 * i + 1, 2 * i + 2):
                if c < n:
                    visit(c)
