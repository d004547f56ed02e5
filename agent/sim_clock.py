"""A simulated wall clock for tests and the demo (never on a real terminal).

The daemon's `now` (clock guard, settlement watchdog, alert machine) comes
from here when the environment variable DAOZHANG_SIM_CLOCK names a file;
without it the daemon uses the system clock and this module does nothing.

The file holds one line of JSON, re-read whenever its mtime or size changes:

    {"offset_ms": -86400000, "speed": 1}

now = real_now + offset_ms, and with speed s != 1, time runs s times as
fast from the moment the file was (re)read:  now = t0 + offset_ms +
s * (real_now - t0).  A test steps the clock back a day at boot by writing
{"offset_ms": -86400000} before starting the agent, and makes it trusted
again by rewriting {"offset_ms": 0}; it makes a sale overdue by moving the
clock past its deadline instead of waiting a day.  A missing or unreadable
file counts as offset 0, speed 1 (a test's typo must not crash the agent).

Journal records keep the system clock's wall_ms: only the agent's notion of
"now" moves.
"""

import json
import os
import threading
import time

from daozhang.files import atomic_write

ENV = "DAOZHANG_SIM_CLOCK"


def real_ms():
    return time.time_ns() // 1000000


class FileClock:
    def __init__(self, path, real=real_ms):
        self.path = path
        self.real = real
        self._lock = threading.Lock()
        self._stamp = None
        self._offset = 0
        self._speed = 1
        self._t0 = real()

    def _reload(self):
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if stamp == self._stamp:
            return
        self._stamp = stamp
        offset, speed = 0, 1
        if stamp is not None:
            try:
                with open(self.path) as f:
                    data = json.load(f)
                offset = int(data.get("offset_ms", 0))
                speed = data.get("speed", 1)
                speed = speed if isinstance(speed, (int, float)) and speed > 0 else 1
            except (OSError, ValueError, TypeError, AttributeError):
                offset, speed = 0, 1
        self._offset, self._speed, self._t0 = offset, speed, self.real()

    def __call__(self):
        with self._lock:
            self._reload()
            real = self.real()
            return int(self._t0 + self._offset + self._speed * (real - self._t0))


def from_environment(environ=None):
    """A now_ms() function if DAOZHANG_SIM_CLOCK is set, else None."""
    path = (environ if environ is not None else os.environ).get(ENV)
    return FileClock(path) if path else None


def write_clock_file(path, offset_ms=0, speed=1):
    """For tests and the demo: set the simulated clock (atomic replace)."""
    atomic_write(path, json.dumps({"offset_ms": int(offset_ms), "speed": speed}), durable=False)
