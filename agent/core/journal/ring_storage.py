"""Drive the ring over any block storage: open (recover) and commit.

`storage` has pread(offset, length), pwrite(offset, data), sync(), size():
a file on Linux (agent/storage.py), a flash partition on a microcontroller
(firmware/), a bytearray in tests.  Single-threaded; the Linux adapter adds
group commit on top.  Portable: CPython and MicroPython.
"""

from daozhang.agent.core.errors import JournalCorrupt, JournalDamaged, StorageError
from daozhang.agent.core.journal import layout
from daozhang.agent.core.journal.ring import Ring


def open_ring(storage):
    """Read the superblock and headers, recover, make the fixes durable; return the Ring.

    Bytes recovery cuts are first handed to `storage.quarantine(offset, data)`
    (kept beside the journal) and only then zeroed; damage to committed
    records raises JournalDamaged with nothing written.
    """
    try:
        geo = layout.decode_superblock(storage.pread(0, layout.SUPERBLOCK_SIZE))
    except JournalCorrupt as exc:
        raise JournalDamaged("journal damaged at offset 0 (%s); nothing was changed - run `daozhang journal "
                             "verify`" % exc, None, 0)
    if storage.size() < geo.file_size:
        raise JournalCorrupt("journal is %d bytes, its superblock says %d: truncated"
                             % (storage.size(), geo.file_size))
    headers = [storage.pread(geo.segment_offset(i), layout.SEGMENT_HEADER_SIZE)
               for i in range(geo.segment_count)]
    ring = Ring(geo)
    fixes = ring.recover(headers, lambda i: storage.pread(geo.segment_offset(i), geo.segment_size))
    if ring.quarantine:
        keep = getattr(storage, "quarantine", None)
        if keep is None:
            raise StorageError("recovery must set %d byte range(s) aside but this storage has no quarantine; "
                               "nothing was changed" % len(ring.quarantine))
        for offset, data in ring.quarantine:
            keep(offset, data)
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
    """Perform a prepared commit's writes, one sync per phase; the caller then applies it."""
    for phase in commit.phases:
        for offset, data in phase:
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
        self.quarantined = []        # (offset, bytes) recovery set aside

    def size(self):
        return len(self.data)

    def pread(self, offset, length):
        return bytes(self.data[offset:offset + length])

    def pwrite(self, offset, data):
        self.data[offset:offset + len(data)] = data

    def sync(self):
        self.syncs += 1

    def quarantine(self, offset, data):
        self.quarantined.append((offset, bytes(data)))
