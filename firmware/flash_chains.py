"""Hash chains of slots on flash, for the firmware's on-flash indexes
(firmware/sale_index_slots.py, firmware/alert_store_flash.py): buckets are
4-byte records of a RecordFile (firmware/flash_records.py), one array of
1 << log2 buckets per map side by side from record `bucket_base`; a bucket
holds the first slot of its chain and each slot's head the next one
(links are slot + 1; 0 ends a chain).  The owner doubles the buckets when a
map holds twice as many items, and re-chains its slots.

A mixin: the owner has `bkt` (the RecordFile), `bucket_base` and `log2`.
Portable: CPython and MicroPython.
"""

import struct


class HashChains:
    def _bucket(self, m, h):
        return self.bucket_base + m * (1 << self.log2) + (h & ((1 << self.log2) - 1))

    def _chain_head(self, m, h):
        return struct.unpack("<i", self.bkt.read(self._bucket(m, h)))[0]

    def _set_chain_head(self, m, h, link):
        self.bkt.write(self._bucket(m, h), struct.pack("<i", link))

    def _push_link(self, m, h, slot):
        """Slot at the front of its chain; returns the link it now points to."""
        old = self._chain_head(m, h)
        self._set_chain_head(m, h, slot + 1)
        return old

    def _unlink(self, m, h, slot, read_head, put_head, field):
        """Take slot out of map m's chain for hash h."""
        link = self._chain_head(m, h)
        prev = None
        while link:
            head = read_head(link - 1)
            if link - 1 == slot:
                if prev is None:
                    self._set_chain_head(m, h, head[field])
                else:
                    prev[1][field] = head[field]
                    put_head(prev[0], prev[1])
                return
            prev = (link - 1, head)
            link = head[field]
