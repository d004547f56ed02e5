"""The journal's storage on a MicroPython board: a preallocated file on flash.

Same four methods as agent/storage.py (pread, pwrite, sync, size), so the
portable ring drives it unchanged.  On littlefs (the default filesystem of
most MicroPython ports) a file write is copy-on-write and `flush()` commits
it atomically, which is what `sync()` relies on.
"""

import os


QUARANTINE_LIMIT = 128 * 1024      # two of the shipped board's 64 KiB segments


class FlashStorage:
    def __init__(self, path, quarantine_limit=QUARANTINE_LIMIT):
        self.path = path
        self.quarantine_limit = quarantine_limit
        self.f = open(path, "r+b")

    def size(self):
        return self.f.seek(0, 2)

    def pread(self, offset, length):
        self.f.seek(offset)
        return self.f.read(length)

    def pwrite(self, offset, data):
        self.f.seek(offset)
        self.f.write(data)

    def sync(self):
        self.f.flush()
        if hasattr(os, "sync"):
            os.sync()

    def quarantine(self, offset, data):
        """Keep bytes recovery cuts in PATH.quarantine (SPEC 3.15) before they are zeroed.

        Bounded (a board's filesystem is small): an entry that would take the
        file past `quarantine_limit` is refused with nothing changed, never
        dropped.  The entry bytes come from the core (agent/core/journal/quarantine_entry.py, copied to
        every board); firmware/quarantine.py is the partition's version.
        """
        from daozhang.agent.core.errors import StorageError
        from daozhang.agent.core.journal import quarantine_entry
        entry = quarantine_entry.encode(offset, data)
        path = self.path + ".quarantine"
        try:
            held = os.stat(path)[6]
        except OSError:
            held = 0
        if held + len(entry) > self.quarantine_limit:
            raise StorageError("quarantine %s holds %d bytes and cannot take %d more (limit %d): copy it off "
                               "the board and delete it; nothing was changed"
                               % (path, held, len(entry), self.quarantine_limit))
        with open(path, "ab") as q:
            q.write(entry)
        if hasattr(os, "sync"):
            os.sync()

    def close(self):
        self.f.close()


def create(path, geometry_bytes, total_size, chunk=4096):
    """Write a zero-filled journal file of `total_size` bytes, superblock first."""
    with open(path, "wb") as f:
        f.write(geometry_bytes)
        remaining = total_size - len(geometry_bytes)
        zeros = bytes(chunk)
        while remaining > 0:
            n = min(chunk, remaining)
            f.write(zeros[:n])
            remaining -= n
