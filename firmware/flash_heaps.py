"""Binary min-heaps of slot numbers on flash, each slot keeping its place in
each heap, so any element goes in or out in O(log n) record reads and
writes, with no stale entries and no rebuilds.  Shared by the firmware's
on-flash indexes (firmware/sale_index_heaps.py, firmware/alert_store_flash.py).

Cells live in a RecordFile (firmware/flash_records.py) of 4-byte cells per
heap side by side (12-byte records for the three heaps both owners keep):
record i holds element i of heap 0, 1, ... (slot + 1; 0: empty).
A subclass says where a heap's size and a slot's places are kept and how
two slots compare:

    _size(which) / _set_size(which, n)
    _head(slot) -> the slot's head (whatever _place and _less read)
    _place(which, head) -> index + 1 in that heap, 0 when absent
    _set_place(which, slot, place)
    _less(which, a, head_a, b, head_b)

Portable: CPython and MicroPython.
"""

import struct


class SlotHeaps:
    def __init__(self, file):
        self.file = file

    def holds(self, which, head):
        return self._place(which, head) != 0

    def top(self, which):
        """The least slot of heap `which`, or None when it is empty."""
        return self._cell(which, 0) if self._size(which) else None

    def _cell(self, which, i):
        return struct.unpack("<i", self.file.read(i)[which * 4:which * 4 + 4])[0] - 1

    def _put(self, which, i, slot):
        self.file.write(i, struct.pack("<i", slot + 1), which * 4)
        self._set_place(which, slot, i + 1)

    def push(self, which, slot):
        n = self._size(which)
        self._set_size(which, n + 1)
        self._up(which, n, slot, self._head(slot))

    def remove(self, which, slot):
        """Take `slot` out of heap `which` (it compares nothing against the
        slot itself: its head may already hold new values)."""
        i = self._place(which, self._head(slot)) - 1
        last = self._size(which) - 1
        self._set_size(which, last)
        self._set_place(which, slot, 0)
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
