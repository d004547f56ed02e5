"""The journal on a raw flash partition (an esp32.Partition-style block
device), with NOR flash's rule: a write can only clear bits; setting one
back needs the whole block erased (to 0xFF) first.

Same four methods as firmware/flash_storage.py (pread, pwrite, sync, size),
so the portable ring drives it unchanged.  Two choices make that safe:

* Bytes are stored inverted.  Erased flash (0xFF) reads as the ring's
  zeros, so appending a commit into a segment's free space only clears
  bits: a plain program, no erase, nothing already committed is touched.
  Starting a new segment rewrites whole blocks: erase, then program.
* A write that must set bits inside a block that keeps other bytes
  (recovery zeroing a torn tail, or voiding a torn segment's header) goes
  through a one-block rewrite journal in the partition's last two blocks:
  the new block image, then a header (magic, block number, SHA-256 of the
  image), then erase and program the target, then erase the header.  A
  power cut anywhere leaves either the old block or a header that
  `__init__` replays, so committed bytes in that block are never lost.

Block device interface (MicroPython's extended block protocol, which
esp32.Partition implements): readblocks(n, buf, offset),
writeblocks(n, buf, offset) programs without erasing, ioctl(4) block
count, ioctl(5) block size, ioctl(6, n) erases block n, ioctl(3) syncs.

Bytes recovery sets aside (a torn tail, SPEC 3.9) go to `quarantine`, a
firmware/quarantine.py QuarantineFile on the board's filesystem, before
they are zeroed; without one, recovery that must cut refuses to run.
"""

import hashlib
import struct

from daozhang.agent.core.errors import StorageError

MAGIC = b"DZRW"
_HEADER = ">4sI32s"          # magic, block, SHA-256 of the image (MicroPython has no struct.Struct)
_HEADER_SIZE = 40
IOCTL_SYNC, IOCTL_COUNT, IOCTL_SIZE, IOCTL_ERASE = 3, 4, 5, 6
REWRITE_BLOCKS = 2


def invert(data):
    """Each byte XOR 0xFF, in C (one big-int XOR) rather than a Python loop."""
    n = len(data)
    if n == 0:
        return b""
    return (int.from_bytes(data, "big") ^ ((1 << (8 * n)) - 1)).to_bytes(n, "big")


def programmable(old, new):
    """True when writing `new` over `old` clears bits only (no erase needed)."""
    n = len(new)
    return int.from_bytes(new, "big") & (int.from_bytes(old, "big") ^ ((1 << (8 * n)) - 1)) == 0


class PartitionStorage:
    def __init__(self, part, quarantine=None):
        self.part = part
        self.keeper = quarantine
        self.block = part.ioctl(IOCTL_SIZE, 0)
        self.count = part.ioctl(IOCTL_COUNT, 0)
        if self.count <= REWRITE_BLOCKS:
            raise StorageError("partition of %d blocks: at least %d needed" % (self.count, REWRITE_BLOCKS + 1))
        self.data_blocks = self.count - REWRITE_BLOCKS
        self._header_block = self.count - 2
        self._image_block = self.count - 1
        self.erases = 0
        self._replay()

    # -- the storage interface ------------------------------------------

    def size(self):
        return self.data_blocks * self.block

    def pread(self, offset, length):
        self._check(offset, length)
        out = bytearray(length)
        done = 0
        while done < length:
            b, off = divmod(offset + done, self.block)
            n = min(self.block - off, length - done)
            buf = bytearray(n)
            self.part.readblocks(b, buf, off)
            out[done:done + n] = invert(buf)      # a block at a time: a 64 KiB segment needs no 64 KiB int
            done += n
        return bytes(out)

    def pwrite(self, offset, data):
        self._check(offset, len(data))
        done = 0
        while done < len(data):
            b, off = divmod(offset + done, self.block)
            n = min(self.block - off, len(data) - done)
            self._write_in_block(b, off, invert(data[done:done + n]))
            done += n

    def sync(self):
        self.part.ioctl(IOCTL_SYNC, 0)

    def quarantine(self, offset, data):
        """Keep bytes recovery is about to zero (SPEC 3.15), durably, first."""
        if self.keeper is None:
            raise StorageError("recovery must set %d bytes at offset %d aside but no quarantine file was given "
                               "(board.json \"quarantine\"); nothing was changed" % (len(data), offset))
        self.keeper.keep(offset, data)

    def close(self):
        pass

    # -- flash rules ----------------------------------------------------

    def _check(self, offset, length):
        if offset < 0 or offset + length > self.size():
            raise StorageError("flash access %d+%d outside the %d-byte journal area"
                               % (offset, length, self.size()))

    def _read_block(self, b):
        buf = bytearray(self.block)
        self.part.readblocks(b, buf, 0)
        return buf

    def _erase(self, b):
        self.erases += 1
        self.part.ioctl(IOCTL_ERASE, b)

    def _write_in_block(self, b, off, phys):
        old = bytearray(len(phys))
        self.part.readblocks(b, old, off)
        if programmable(old, phys):
            self.part.writeblocks(b, phys, off)
        elif len(phys) == self.block:
            self._erase(b)
            self.part.writeblocks(b, phys, 0)
        else:
            image = self._read_block(b)
            image[off:off + len(phys)] = phys
            self._rewrite(b, image)

    def _rewrite(self, b, image):
        self._erase(self._image_block)
        self.part.writeblocks(self._image_block, image, 0)
        self._erase(self._header_block)
        self.part.writeblocks(self._header_block, struct.pack(_HEADER, MAGIC, b, hashlib.sha256(image).digest()), 0)
        self._finish(b, image)

    def _finish(self, b, image):
        self._erase(b)
        self.part.writeblocks(b, image, 0)
        self._erase(self._header_block)

    def _replay(self):
        """Finish a block rewrite that a power cut interrupted."""
        head = bytearray(_HEADER_SIZE)
        self.part.readblocks(self._header_block, head, 0)
        magic, b, digest = struct.unpack(_HEADER, head)
        if magic != MAGIC:
            return
        image = self._read_block(self._image_block)
        if b >= self.data_blocks or hashlib.sha256(image).digest() != digest:
            self._erase(self._header_block)         # a torn header: the target was never touched
            return
        self._finish(b, image)


def format_partition(part, geometry_bytes, quarantine=None):
    """Erase the journal area (zeros to the ring) and write the superblock."""
    storage = PartitionStorage(part, quarantine)
    for b in range(storage.count):
        storage._erase(b)
    storage.pwrite(0, geometry_bytes)
    storage.sync()
    return storage
