"""Fixed-size records in files, for the firmware's on-flash indexes
(firmware/sale_index_flash.py): the pieces that touch a file, nothing else.

    files = DirFiles("/sidx")        # a directory on the board's littlefs
    files = MemoryFiles()            # tests: BytesIO "files" that outlive a reopen
    files.clear()                    # every file gone (a derived store starts empty)
    recs = RecordFile(files.open("ent"), 320)
    recs.read(i) -> bytes            # a record never written reads as zeros
    recs.write(i, data, at=0)        # part of record i, from byte `at`

A record file only grows (at its end: a gap is written as zeros first, so
the file systems' "seek past the end" rules never matter) and holds no
record in RAM.  `stable_hash` is the same on CPython and MicroPython (the
built-in hash() is not, and an index on flash outlives the interpreter).
Portable: CPython and MicroPython.
"""

import hashlib
import os


def stable_hash(text):
    """32 bits of SHA-256 of the UTF-8 text (hashlib is C on the board)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


class RecordFile:
    def __init__(self, f, size):
        self.f = f
        self.size = size
        self.length = f.seek(0, 2)

    def read(self, i, length=None):
        n = self.size if length is None else length
        off = i * self.size
        if off >= self.length:
            return bytes(n)
        self.f.seek(off)
        data = self.f.read(n)
        if len(data) < n:
            data += bytes(n - len(data))
        return data

    def write(self, i, data, at=0):
        off = i * self.size + at
        if off > self.length:
            self.f.seek(self.length)
            self.f.write(bytes(off - self.length))
        self.f.seek(off)
        self.f.write(data)
        if off + len(data) > self.length:
            self.length = off + len(data)

    def flush(self):
        self.f.flush()

    def truncate(self):
        self.length = 0


class DirFiles:
    """Files in one directory (created if missing), opened read-write."""

    def __init__(self, path):
        self.path = path
        try:
            os.mkdir(path)
        except OSError:
            pass                                  # it exists
        self.opened = []

    def open(self, name, fresh=False):
        full = self.path + "/" + name
        if not fresh:
            try:
                f = open(full, "r+b")
            except OSError:
                fresh = True
        if fresh:
            f = open(full, "w+b")
        self.opened.append(f)
        return f

    def clear(self):
        """Close and remove every file in the directory (a derived store
        starting empty at boot)."""
        self.close()
        for name in os.listdir(self.path):
            os.remove(self.path + "/" + name)

    def sync(self):
        # Nothing more: a file's flush() is what makes it durable on the
        # board (littlefs lfs_file_sync, FAT f_sync), and os.sync() on CPython
        # would flush every file system of the machine.
        pass

    def close(self):
        for f in self.opened:
            f.close()
        self.opened = []


class _MemoryFile:
    """What the index asks of a file (seek, read, write, flush), over a
    bytearray held by MemoryFiles: `flush()` is what survives a power cut."""

    def __init__(self, owner, name, data):
        self.owner, self.name, self.data, self.pos = owner, name, data, 0

    def seek(self, offset, whence=0):
        self.pos = offset if whence == 0 else len(self.data) + offset
        return self.pos

    def read(self, n):
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += len(out)
        return out

    def write(self, b):
        end = self.pos + len(b)
        if end > len(self.data):
            self.data.extend(bytes(end - len(self.data)))
        self.data[self.pos:end] = b
        self.pos = end
        return len(b)

    def flush(self):
        self.owner.durable[self.name] = bytes(self.data)

    def close(self):
        pass


class MemoryFiles:
    """Files in RAM for tests, with a power cut: `durable` holds each file
    as of its last flush(), `after_cut()` a fresh MemoryFiles with only that."""

    def __init__(self, durable=None):
        self.durable = dict(durable or {})
        self.live = {}

    def open(self, name, fresh=False):
        data = bytearray() if fresh else bytearray(self.durable.get(name, b""))
        if fresh:
            self.durable[name] = b""
        f = _MemoryFile(self, name, data)
        self.live[name] = f
        return f

    def sync(self):
        pass

    def clear(self):
        self.durable = {}
        self.live = {}

    def close(self):
        pass

    def after_cut(self):
        return MemoryFiles(self.durable)
