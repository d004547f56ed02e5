"""Block storage under the journal: a preallocated file or block device.

The journal core never touches a file; this adapter does positioned reads
and writes and one `fdatasync` per commit.  Tests swap in a fault-injecting
twin with the same four methods (tests/dztest/faulty_storage.py).
"""

import fcntl
import hashlib
import os

from daozhang.agent.core.errors import StorageError
from daozhang.agent.core.journal import quarantine_entry
from daozhang.files import atomic_write, fsync_directory


class JournalBusy(StorageError):
    """Another process (or handle) has the journal open for writing."""


class FileStorage:
    def __init__(self, path, readonly=False):
        self.path = path
        flags = os.O_RDONLY if readonly else os.O_RDWR
        try:
            self.fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise StorageError("cannot open journal %s: %s" % (path, exc.strerror or exc)) from None
        if not readonly:
            self._lock_for_writing()

    def _lock_for_writing(self):
        # One writer per journal: two would fork the chain.  flock dies with
        # the process (SIGKILL included), so a crash never leaves it stuck.
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            raise JournalBusy("journal %s is open for writing by another process (is the agent "
                              "running? stop it first)" % self.path) from None

    def size(self):
        # Works for block devices too, where fstat reports 0.
        return os.lseek(self.fd, 0, os.SEEK_END)

    def pread(self, offset, length):
        try:
            data = os.pread(self.fd, length, offset)
        except OSError as exc:
            raise StorageError("read of %d bytes at %d failed: %s" % (length, offset, exc.strerror)) from None
        return data

    def pwrite(self, offset, data):
        try:
            written = os.pwrite(self.fd, data, offset)
        except OSError as exc:
            raise StorageError("write of %d bytes at %d failed: %s" % (len(data), offset, exc.strerror)) from None
        if written == len(data):
            return
        view = memoryview(data)[written:]       # a short write: go on from where it stopped
        offset += written
        while view:
            try:
                written = os.pwrite(self.fd, view, offset)
            except OSError as exc:
                raise StorageError("write of %d bytes at %d failed: %s" % (len(view), offset, exc.strerror)) from None
            view = view[written:]
            offset += written

    def sync(self):
        try:
            os.fdatasync(self.fd)
        except OSError as exc:
            raise StorageError("fdatasync failed: %s" % exc.strerror) from None

    def quarantine(self, offset, data):
        """Keep bytes recovery is about to zero (SPEC 3.9) in PATH.quarantine, durably."""
        append_quarantine(self.path + ".quarantine", offset, data)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


QUARANTINE_MAGIC = quarantine_entry.MAGIC


def append_quarantine(path, offset, data):
    """One quarantine entry (SPEC 3.15): magic, journal offset, length,
    SHA-256 of the bytes, the bytes; fsynced with its directory before the
    journal bytes are changed."""
    entry = quarantine_entry.encode(offset, data)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o640)
        try:
            os.write(fd, entry)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_directory(path)
    except OSError as exc:
        raise StorageError("cannot keep cut bytes in %s: %s; nothing was changed" % (path, exc.strerror or exc)) \
            from None


def read_quarantine(path):
    """[(journal offset, bytes, sha256 ok)] of a quarantine file."""
    out = []
    with open(path, "rb") as f:
        blob = f.read()
    pos = 0
    while pos + 48 <= len(blob) and blob[pos:pos + 4] == QUARANTINE_MAGIC:
        offset = int.from_bytes(blob[pos + 4:pos + 12], "big")
        length = int.from_bytes(blob[pos + 12:pos + 16], "big")
        digest = blob[pos + 16:pos + 48]
        data = blob[pos + 48:pos + 48 + length]
        out.append((offset, data, hashlib.sha256(data).digest() == digest and len(data) == length))
        pos += 48 + length
    return out


def create_file(path, image_head, total_size):
    """Write a fully allocated journal atomically: temp file, fsync, rename.

    Zeros are written for real (not fallocate): later fdatasyncs then never
    have to convert unwritten extents, and a full disk cannot hit the journal
    after creation.
    """
    atomic_write(path, _image_chunks(image_head, total_size), durable=True, mode=0o640)


def _image_chunks(image_head, total_size):
    yield image_head
    chunk = bytes(1 << 20)
    remaining = total_size - len(image_head)
    while remaining > 0:
        yield chunk[:min(len(chunk), remaining)]
        remaining -= len(chunk)
