"""Which acquirer_refs (and which exact rows) a file has already shown, in
16 bytes per row: a 200 MB file holds a million rows or more, and a Python
dict or set of them costs 100+ bytes each (issue 12: RSS <= 200 MiB).

Hand-written because nothing in the standard library (or our dependencies)
keeps a set of 64-bit integers compactly: an open-addressing table in an
`array('Q')`, linear probing, grown at half full, 0 reserved for "empty".
Keys are 64-bit hashes; two different refs colliding (about 2**-64 per
pair) would make a row look like a repeat, a risk we accept and document.
"""

from array import array

_EMPTY = 0


def digest64(value):
    """A nonzero 64-bit key for a string or a tuple of plain values: Python's
    own hash (SipHash for text, seeded per process), which is all a set
    living for one pass over one file needs, and much cheaper than a
    cryptographic digest of the row's repr."""
    return (hash(value) & 0xFFFFFFFFFFFFFFFF) or 1


class Seen64:
    """A set of nonzero 64-bit ints, each with a 64-bit value:
    `add(key, value)` -> None when new, else the value stored first."""

    def __init__(self, capacity=1024):
        self.table = array("Q", [0]) * capacity
        self.values = array("Q", [0]) * capacity
        self.mask = capacity - 1
        self.count = 0

    def _slot(self, key):
        table, mask = self.table, self.mask
        i = (key ^ (key >> 29)) & mask
        while True:
            here = table[i]
            if here == _EMPTY or here == key:
                return i
            i = (i + 1) & mask

    def __contains__(self, key):
        return self.table[self._slot(key)] == key

    def add(self, key, value=0):
        i = self._slot(key)
        if self.table[i] == key:
            return self.values[i]
        self.table[i] = key
        self.values[i] = value
        self.count += 1
        if 2 * self.count > self.mask:
            self._grow()
        return None

    def _grow(self):
        old, old_values = self.table, self.values
        size = 2 * len(old)
        self.table = array("Q", [0]) * size
        self.values = array("Q", [0]) * size
        self.mask = size - 1
        for key, value in zip(old, old_values):
            if key != _EMPTY:
                i = self._slot(key)
                self.table[i] = key
                self.values[i] = value
