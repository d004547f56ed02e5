"""Where a board keeps the bytes journal recovery sets aside (SPEC 3.15).

Recovery (SPEC 3.9) never zeroes a torn tail before it has been kept: the
driver hands each range to `storage.quarantine(offset, data)` first.  On a
board whose journal is a raw flash partition (firmware/partition_storage.py)
the range goes to a small append-only file on the board's filesystem
(littlefs: `flush()` commits atomically), in the same entry format as the
Linux agent's PATH.quarantine, so `daozhang` host tools read both.

Bounded: a board's filesystem is small, so the file never grows past
`limit` bytes; a range that would not fit is refused (StorageError, the
journal is left untouched and recovery does not run) rather than dropped -
copy the file off the board and delete it.  A power cut in the middle of an
append leaves a torn last entry; it was never followed by the zeroing (the
bytes are still in the journal and recovery keeps them again), so the next
append first rewrites the file without it.
Portable: CPython and MicroPython (no os.path, no os.fsync there).
"""

import hashlib
import os

from daozhang.agent.core.errors import StorageError
from daozhang.agent.core.journal import quarantine_entry

MAGIC = quarantine_entry.MAGIC
ENTRY_HEADER = quarantine_entry.HEADER_SIZE
DEFAULT_LIMIT = 128 * 1024     # two of the shipped board's 64 KiB segments


def entry(offset, data):
    """One SPEC 3.15 entry."""
    return quarantine_entry.encode(offset, data)


class QuarantineFile:
    def __init__(self, path, limit=DEFAULT_LIMIT):
        self.path = path
        self.limit = limit

    def keep(self, offset, data):
        """Append one entry durably, or raise StorageError having changed nothing."""
        new = entry(offset, data)
        try:
            whole = self._whole_entries()
            if whole + len(new) > self.limit:
                raise StorageError("quarantine %s holds %d bytes and cannot take %d more (limit %d): copy it off "
                                   "the board and delete it; nothing was changed"
                                   % (self.path, whole, len(new), self.limit))
            if whole != self._size():
                self._cut_to(whole)
            with open(self.path, "ab") as f:
                f.write(new)
                f.flush()
            if hasattr(os, "sync"):
                os.sync()
        except OSError as exc:
            raise StorageError("cannot keep cut bytes in %s: %s; nothing was changed" % (self.path, exc))

    def entries(self):
        """[(journal offset, bytes, sha256 ok)], whole entries only."""
        out = []
        try:
            f = open(self.path, "rb")
        except OSError:
            return out
        with f:
            while True:
                head = f.read(ENTRY_HEADER)
                if len(head) < ENTRY_HEADER or head[:4] != MAGIC:
                    return out
                length = int.from_bytes(head[12:16], "big")
                data = f.read(length)
                if len(data) < length:
                    return out
                out.append((int.from_bytes(head[4:12], "big"), data, hashlib.sha256(data).digest() == head[16:48]))

    # -- helpers ----------------------------------------------------------

    def _size(self):
        try:
            return os.stat(self.path)[6]
        except OSError:
            return 0

    def _whole_entries(self):
        """Bytes taken by the complete entries at the file's start (headers only are read)."""
        size = self._size()
        pos = 0
        if size == 0:
            return 0
        with open(self.path, "rb") as f:
            while pos + ENTRY_HEADER <= size:
                f.seek(pos)
                head = f.read(ENTRY_HEADER)
                if head[:4] != MAGIC:
                    break
                end = pos + ENTRY_HEADER + int.from_bytes(head[12:16], "big")
                if end > size:
                    break
                pos = end
        return pos

    def _cut_to(self, whole):
        """Drop a torn last entry: copy the whole ones to a new file, then rename over."""
        tmp = self.path + ".tmp"
        with open(self.path, "rb") as src, open(tmp, "wb") as dst:
            left = whole
            while left:
                chunk = src.read(min(4096, left))
                dst.write(chunk)
                left -= len(chunk)
            dst.flush()
        os.rename(tmp, self.path)
