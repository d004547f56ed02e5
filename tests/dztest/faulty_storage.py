"""A block device that loses power on cue (littlefs's emulated bdev, for us).

Writes sit in a volatile cache until sync(); a power cut after operation k
keeps what was synced plus, depending on the mode:
  "drop"    - none of the unsynced writes;
  "tear"    - the unsynced writes in order, the last one torn at a sector:
              whole sectors, then one WHOLE sector of garbage (as SD/eMMC
              garble a torn sector, including bytes of it that were durable
              before), then nothing;
  "reorder" - a random subset of the unsynced writes' sectors, in any order,
              one of them possibly a whole sector of garbage.
`sector` is the tear unit (512 by default; 4096 for 4Kn flash).
Injected errors: `fail_write` / `fail_sync` = an OSError errno raised at the
n-th such call (EIO, ENOSPC), with the write not applied.
"""

import errno
import random

from daozhang.agent.core.errors import StorageError

SECTOR = 512


class PowerCut(Exception):
    """The power went out: the writer process is gone."""


class FaultyStorage:
    def __init__(self, image, cut_after=None, mode="drop", seed=0, sector=SECTOR):
        self.sector = sector
        self.durable = bytearray(image)
        self.cache = bytearray(image)
        self.pending = []
        self.ops = 0
        self.cut_after = cut_after
        self.mode = mode
        self.rng = random.Random(seed)
        self.fail_write = None   # (n, errno): fail the n-th pwrite
        self.fail_sync = None    # (n, errno): fail the n-th sync
        self.writes = 0
        self.syncs = 0
        self.cut = False
        self.quarantined = []    # (offset, bytes) recovery set aside (kept off the faulty device)

    def size(self):
        return len(self.cache)

    def pread(self, offset, length):
        self._alive()
        return bytes(self.cache[offset:offset + length])

    def pwrite(self, offset, data):
        self._alive()
        self.writes += 1
        if self.fail_write and self.fail_write[0] == self.writes:
            raise StorageError("write failed: %s" % errno.errorcode[self.fail_write[1]])
        data = bytes(data)
        self.cache[offset:offset + len(data)] = data
        self.pending.append((offset, data))
        self._tick()

    def sync(self):
        self._alive()
        self.syncs += 1
        if self.fail_sync and self.fail_sync[0] == self.syncs:
            # Linux may drop the dirty pages after a failed fsync: model the
            # worst case, the unsynced writes are gone from disk.
            self.pending = []
            raise StorageError("fdatasync failed: %s" % errno.errorcode[self.fail_sync[1]])
        for offset, data in self.pending:
            self.durable[offset:offset + len(data)] = data
        self.pending = []
        self._tick()

    def quarantine(self, offset, data):
        self._alive()
        self.quarantined.append((offset, bytes(data)))

    def close(self):
        pass

    def _alive(self):
        if self.cut:
            raise PowerCut("storage is powered off")

    def _tick(self):
        self.ops += 1
        if self.cut_after is not None and self.ops >= self.cut_after:
            self.power_cut()
            raise PowerCut("power cut after operation %d" % self.ops)

    def _sectors(self, offset, data):
        out = []
        pos = 0
        while pos < len(data):
            boundary = ((offset + pos) // self.sector + 1) * self.sector
            end = min(len(data), boundary - offset)
            out.append((offset + pos, data[pos:end]))
            pos = end
        return out

    def power_cut(self):
        """Apply the mode to the unsynced writes and freeze the disk."""
        pending, self.pending = self.pending, []
        if self.mode == "tear" and pending:
            for offset, data in pending[:-1]:
                self.durable[offset:offset + len(data)] = data
            sectors = self._sectors(*pending[-1])
            keep = self.rng.randrange(len(sectors) + 1)
            for offset, piece in sectors[:keep]:
                self.durable[offset:offset + len(piece)] = piece
            if keep < len(sectors):
                self._garble(sectors[keep][0])
        elif self.mode == "reorder" and pending:
            sectors = [s for w in pending for s in self._sectors(*w)]
            self.rng.shuffle(sectors)
            kept = sectors[:self.rng.randrange(len(sectors) + 1)]
            for i, (offset, piece) in enumerate(kept):
                if i == len(kept) - 1 and self.rng.random() < 0.5:
                    self._garble(offset)
                else:
                    self.durable[offset:offset + len(piece)] = piece
        self.cut = True

    def _garble(self, offset):
        """The whole sector holding `offset` becomes garbage."""
        start = offset // self.sector * self.sector
        end = min(start + self.sector, len(self.durable))
        self.durable[start:end] = self.rng.getrandbits(8 * (end - start)).to_bytes(end - start, "little")

    def image(self):
        return bytes(self.durable)
