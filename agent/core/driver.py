"""Drive the ring over any block storage: open (recover) and commit.

`storage` has pread(offset, length), pwrite(offset, data), sync(), size():
a file on Linux (agent/storage.py), a flash partition on a microcontroller
(firmware/), a bytearray in tests.  Single-threaded; the Linux adapter adds
group commit on top.  Portable: CPython and MicroPython.
"""

from . import layout
from .errors import JournalCorrupt
from .ring import Ring


def open_ring(storage):
    """Read the superblock and headers, recover, make the fixes durable; return the Ring."""
    geo = layout.decode_superblock(storage.pread(0, layout.SUPERBLOCK_SIZE))
    if storage.size() < geo.file_size:
        raise JournalCorrupt("journal is %d bytes, its superblock says %d: truncated"
                             % (storage.size(), geo.file_size))
    headers = [storage.pread(geo.segment_offset(i), layout.SEGMENT_HEADER_SIZE)
               for i in range(geo.segment_count)]
    ring = Ring(geo)
    fixes = ring.recover(headers, lambda i: storage.pread(geo.segment_offset(i), geo.segment_size))
    for offset, data in fixes:
        storage.pwrite(offset, data)
    if fixes:
        storage.sync()
    return ring


def boot_payload(ring, version):
    """The boot record (SPEC 3.5 type 4) describing what recovery cut."""
    payload = {"reason": "init" if ring.next_seq == 0 else "open", "version": version}
    payload.update(ring.recovered)
    return payload


def write_commit(storage, commit):
    """Perform a prepared commit's writes and one sync; the caller then applies it."""
    for offset, data in commit.writes:
        storage.pwrite(offset, data)
    storage.sync()


def commit(storage, ring, entries, clock, signer, acked=None, released=None):
    """Prepare, write, sync and apply one commit; return its Appended results."""
    prepared = ring.prepare(entries, clock, signer, acked, released)
    write_commit(storage, prepared)
    ring.apply(prepared)
    return prepared.results


class MemoryStorage:
    """A bytearray standing in for a block device (tests, vectors, MicroPython)."""

    def __init__(self, data):
        self.data = bytearray(data)
        self.syncs = 0

    def size(self):
        return len(self.data)

    def pread(self, offset, length):
        return bytes(self.data[offset:offset + length])

    def pwrite(self, offset, data):
        self.data[offset:offset + len(data)] = data

    def sync(self):
        self.syncs += 1
