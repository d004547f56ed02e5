"""Helpers for the USB service port tests: journals and a cuttable pty link.

`PtyCable` joins two real pty pairs with a proxy thread: the device (the
agent's ServicePort) holds one slave, the technician's tool opens the other
slave's path with pyserial.  The proxy can pull the cable after a number of
bytes (tearing whatever frame is in flight, then hanging up the tool's side,
as a USB unplug does) and can flip bits in transit.
"""

import os
import random
import select
import threading

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daozhang.agent.core.journal import layout


def write_random_journal(path, segment_size=8192, segment_count=4, device_id="dev-usb-1", seed=1):
    """A journal-shaped file: a valid superblock, then random segment bytes."""
    geo = layout.Geometry(segment_size, segment_count, bytes(range(16)), device_id, 1700000000000)
    rng = random.Random(seed)
    body = bytes(rng.getrandbits(8) for _ in range(segment_size * segment_count))
    data = geo.encode() + body
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return data


def write_key_pair(prefix):
    """PREFIX.key / PREFIX.pub as `daozhang keys new` writes them; the private key."""
    key = Ed25519PrivateKey.generate()
    with open(prefix + ".key", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(prefix + ".pub", "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    return key


class PtyCable:
    """device_fd (give it to ServicePort) <-> proxy <-> tool_path (open it with pyserial)."""

    def __init__(self, seed=0):
        self.rng = random.Random(seed)
        self.device_master, self.device_fd = os.openpty()
        self.lock = threading.Lock()
        self.cut_after = None        # bytes left before the cable is pulled
        self.flip_every = None       # flip one bit in every Nth forwarded read
        self.flips = 0
        self.cuts = 0
        self.forwarded = 0
        self._reads = 0
        self.unplugged = threading.Event()
        self._stop = threading.Event()
        self._tool_master = None
        self.tool_path = None
        self.plug()
        self._thread = threading.Thread(target=self._run, name="pty-cable", daemon=True)
        self._thread.start()

    def plug(self, cut_after=None):
        """A fresh tool-side pty (a re-plugged cable); cut after `cut_after` bytes."""
        master, slave = os.openpty()
        path = os.ttyname(slave)
        with self.lock:
            if self._tool_master is not None:
                os.close(self._tool_master)
                os.close(self._tool_slave)
            # Hold the slave open too: a master whose slave was never opened reads EIO.
            self._tool_slave = slave
            self._tool_master = master
            self.tool_path = path
            self.cut_after = cut_after
            self.unplugged.clear()
        return path

    def _unplug(self):
        # Called with the lock held.
        if self._tool_master is not None:
            os.close(self._tool_master)
            os.close(self._tool_slave)
            self._tool_master = None
            self.cuts += 1
            self.unplugged.set()

    def _forward(self, data, to_fd):
        with self.lock:
            self._reads += 1
            if self.flip_every and self._reads % self.flip_every == 0:
                buf = bytearray(data)
                buf[self.rng.randrange(len(buf))] ^= 1 << self.rng.randrange(8)
                data = bytes(buf)
                self.flips += 1
            cut = False
            if self.cut_after is not None:
                if len(data) >= self.cut_after:
                    data = data[:self.cut_after]
                    cut = True
                else:
                    self.cut_after -= len(data)
            if to_fd is None:
                return
            try:
                _write_all(to_fd, data)
            except OSError:
                return
            self.forwarded += len(data)
            if cut:
                self._unplug()

    def _run(self):
        while not self._stop.is_set():
            with self.lock:
                tool = self._tool_master
            fds = [self.device_master] + ([tool] if tool is not None else [])
            try:
                ready, _, _ = select.select(fds, [], [], 0.05)
            except (OSError, ValueError):
                continue  # the tool side was closed under us
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    data = b""
                if fd == self.device_master:
                    if data:
                        with self.lock:
                            target = self._tool_master
                        self._forward(data, target)
                elif data:
                    self._forward(data, self.device_master)

    def close(self):
        self._stop.set()
        self._thread.join(5)
        with self.lock:
            if self._tool_master is not None:
                os.close(self._tool_master)
                os.close(self._tool_slave)
                self._tool_master = None
        os.close(self.device_master)
        os.close(self.device_fd)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class MemoryJournal:
    """A journal-shaped byte string the session can only read (no other method)."""

    def __init__(self, data, segment_size, segment_count):
        self.data = bytes(data)
        self.segment_size = segment_size
        self.segment_count = segment_count
        self.size = 4096 + segment_size * segment_count
        self.reads = 0
        self.on_read = None  # hook: called with (offset, length) before each read

    def read(self, offset, length):
        self.reads += 1
        if self.on_read is not None:
            self.on_read(offset, length)
        return self.data[offset:offset + length]


class MemoryTransport:
    """The laptop's transport wired straight into a DeviceSession (no port)."""

    def __init__(self, session, now=lambda: 0):
        self.session = session
        self.now = now
        self.pending = b""

    def write(self, data):
        self.pending += self.session.receive_data(data, self.now())

    def read(self, timeout):
        data, self.pending = self.pending, b""
        return data

    def close(self):
        pass


def write_signed_journal(path, key_path, segment_size=16384, segment_count=24,
                         device_id="dev-usb-1", batches=100, sector_size=None):
    """A real journal (the agent's writer, signed checkpoints) with records in many segments."""
    from daozhang.agent.core.journal import record
    from daozhang.agent.journal_file import JournalFile, create_journal
    from daozhang.signing import load_signer
    sector = {} if sector_size is None else {"sector_size": sector_size}
    create_journal(path, device_id, size=4096 + segment_size * segment_count,
                   segment_size=segment_size, created_ms=1764115200000, **sector)
    journal = JournalFile.open(path, load_signer(key_path))
    try:
        for b in range(batches):
            journal.append_many([(record.TYPE_TRANSACTION, {"n": b * 10 + i, "memo": "z" * ((b * 10 + i) % 200)})
                                 for i in range(10)])
    finally:
        journal.close()
    with open(path, "rb") as f:
        return f.read()
