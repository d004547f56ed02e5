"""The flash sale index's three ordered sets (firmware/sale_index_flash.py):
binary min-heaps of entry slots (firmware/flash_heaps.py), all three in one
file of 12-byte records (record i holds element i of heap 0, 1 and 2), each
slot keeping its place in each heap in its own head so any element is
removed in O(log n).

    0 due    watched sales not yet seen overdue, by (deadline, seq, key)
    1 floor  transactions with a seq and no settlement yet, by seq
    2 since  every transaction, by since (deadline, else time)

walk(which, go) yields (slot, head) in ascending order while go(head)
holds, best-first: a small frontier in RAM (what is yielded, plus its
children), never the whole heap.  Portable: CPython and MicroPython.
"""

import heapq
import struct

from daozhang.firmware.flash_heaps import SlotHeaps

_POS = 5            # head field of heap 0's place (+ which); a place is index + 1, 0: absent
_POS_AT = 30        # its byte offset in the entry head (struct "<IHqqq": 4 + 2 + 24)
_SIZE = 13          # index header field of heap 0's size (+ which)
_SEQ, _DEADLINE, _SINCE = 2, 3, 4


class Heaps(SlotHeaps):
    def __init__(self, file, index):
        SlotHeaps.__init__(self, file)
        self.index = index

    def _size(self, which):
        return self.index.h[_SIZE + which]

    def _set_size(self, which, n):
        self.index.h[_SIZE + which] = n

    def _head(self, slot):
        return self.index._ent_head(slot)

    def _place(self, which, head):
        return head[_POS + which]

    def _set_place(self, which, slot, place):
        self.index.ent.write(slot, struct.pack("<i", place), _POS_AT + 4 * which)

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
