"""A NOR flash partition in memory, for tests on both interpreters.

esp32.Partition's extended block interface, with flash's rules enforced:
programming may only clear bits (OSError otherwise: "erase first"), erase
sets a whole block to 0xFF.  `cut_after=k` makes the k-th block operation
(program or erase, counted from 1) a power cut: it lands half done (the
first half of the bytes programmed, or the first half of the block erased)
and it and everything after raise PowerCut, as a board that lost power.
"""


class PowerCut(Exception):
    pass


class FakePartition:
    def __init__(self, blocks, block_size=4096, cut_after=None):
        self.block_size = block_size
        # One bytearray per block: the WebAssembly port's heap grows in pieces
        # and will not hand out one megabyte in a single allocation.
        erased = b"\xff" * block_size
        self.blocks = []
        for _ in range(blocks):
            self.blocks.append(bytearray(erased))
        self.ops = 0
        self.cut_after = cut_after
        self.dead = False

    def _op(self):
        if self.dead:
            raise PowerCut("no power")
        self.ops += 1
        if self.cut_after is not None and self.ops >= self.cut_after:
            self.dead = True
            return True
        return False

    def revive(self):
        """Power back on: a fresh boot on the same flash."""
        self.dead = False
        self.cut_after = None

    def readblocks(self, n, buf, offset=0):
        if self.dead:
            raise PowerCut("no power")
        buf[:] = self.blocks[n][offset:offset + len(buf)]

    def writeblocks(self, n, buf, offset=None):
        if offset is None:
            raise OSError("test partition: use the extended interface (offset)")
        start = offset
        if offset + len(buf) > self.block_size:
            raise OSError("write crosses block %d's end" % n)
        cut = self._op()
        data = self.blocks[n]
        old = data[start:start + len(buf)]
        mask = (1 << (8 * len(buf))) - 1
        if int.from_bytes(bytes(buf), "big") & (int.from_bytes(bytes(old), "big") ^ mask):
            raise OSError("program would set bits in block %d: erase first" % n)
        length = len(buf) // 2 if cut else len(buf)
        data[start:start + length] = bytes(buf[:length])
        if cut:
            raise PowerCut("power cut while programming block %d" % n)

    def ioctl(self, op, arg):
        if op == 3:
            return 0
        if op == 4:
            return len(self.blocks)
        if op == 5:
            return self.block_size
        if op == 6:
            cut = self._op()
            length = self.block_size // 2 if cut else self.block_size
            self.blocks[arg][0:length] = b"\xff" * length
            if cut:
                raise PowerCut("power cut while erasing block %d" % arg)
            return 0
        return None

    def image(self):
        """Every block's bytes, as they sit on the flash (inverted)."""
        return b"".join(bytes(b) for b in self.blocks)
