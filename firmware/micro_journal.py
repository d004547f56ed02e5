"""The journal on a microcontroller terminal: the portable ring, no threads.

One writer (the main loop), one commit per call.  The board's signer is
injected: a secure element, or none (every commit is then a flagged signer
outage, SPEC 3.7, until a key is provisioned).
"""

import os
import time

from daozhang.agent.core.journal import record, ring_storage
from daozhang.agent.core.journal.ring import Clock

VERSION = "0.1.0-mpy"


def random_bytes(n):
    # Boards have os.urandom (a hardware RNG); the WebAssembly port does not.
    if hasattr(os, "urandom"):
        return os.urandom(n)
    import random
    return bytes(random.getrandbits(8) for _ in range(n))


class MicroClock:
    """Wall ms from the RTC, monotonic ms from ticks (wrap-safe), a boot id."""

    def __init__(self):
        self.boot_id = random_bytes(record.BOOT_ID_SIZE)
        self._start = time.ticks_ms() if hasattr(time, "ticks_ms") else 0
        self._mono = 0
        self._last = self._start

    def now(self):
        if hasattr(time, "ticks_ms"):
            t = time.ticks_ms()
            self._mono += time.ticks_diff(t, self._last)
            self._last = t
        wall = int(time.time() * 1000) if not hasattr(time, "time_ns") else time.time_ns() // 1000000
        return Clock(wall, self.boot_id, self._mono)


class MicroJournal:
    def __init__(self, storage, signer=None, clock=None):
        self.storage = storage
        self.signer = signer
        self.clock = clock or MicroClock()
        self.ring = ring_storage.open_ring(storage)
        self.noted = (self.ring.acked, self.ring.released)   # cursors for the next commit (sync notes them)
        self.append(record.TYPE_BOOT, ring_storage.boot_payload(self.ring, VERSION))

    def append(self, rtype, payload):
        return self.append_many([(rtype, payload)])[0]

    def append_many(self, entries):
        """[(type, payload), ...] in one commit (one checkpoint, one signature),
        carrying the noted cursors."""
        return ring_storage.commit(self.storage, self.ring, entries, self.clock.now(), self.signer,
                             self.noted[0], self.noted[1])

    def note_cursors(self, acked, released):
        """Cursors the next commit carries (never backwards)."""
        self.noted = (max(self.noted[0], acked), max(self.noted[1], released))

    def set_cursors(self, acked=None, released=None):
        """Commit cursors now (the noted ones by default)."""
        if acked is not None:
            self.note_cursors(acked, released if released is not None else self.noted[1])
        return ring_storage.commit(self.storage, self.ring, [], self.clock.now(), self.signer,
                             self.noted[0], self.noted[1])
