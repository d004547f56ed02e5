"""The demo's simulated clock: a business day in a few minutes.

Settlement deadlines are hours away (D0: within `d0_within_minutes`), and a
demo must show a payment going overdue and then arriving within seconds.  So
the demo runs every party on one simulated clock that starts at the real
time and runs `speed` times faster:

    sim_ms = anchor_sim_ms + (real_ms - anchor_real_ms) * speed

The POS stamps its sales with it, the acquirer its `settled_at`, and the
agent daemon judges deadlines by it.  Every process evaluates the same
formula against its own wall clock, so they agree without talking.

THE CLOCK HOOK: `agent_clock_env()` and `DemoClock.align()` below are the one
place that knows how the agent daemon takes a simulated clock
(agent/sim_clock.py: DAOZHANG_SIM_CLOCK names a JSON file {"offset_ms",
"speed"}; the agent's clock runs `speed` times as fast from the moment it
first reads the file).  The demo writes the file before the agent starts,
then aligns its own clock to the agent's first reading, which is when the
daemon logs `journal_open` (its clock guard reads the clock right after).
"""

import os
import time

from daozhang.files import atomic_write

DEFAULT_SPEED = 600         # 1 real second = 10 simulated minutes
AGENT_CLOCK_ENV = "DAOZHANG_SIM_CLOCK"     # agent/sim_clock.py ENV
AGENT_CLOCK_ALIGN_EVENT = "journal_open"   # the agent event whose ts anchors both clocks


class DemoClock:
    def __init__(self, speed=DEFAULT_SPEED, wall_ms=None):
        if not isinstance(speed, int) or speed < 1:
            raise ValueError("speed: expected an integer >= 1, got %r" % (speed,))
        self.wall_ms = wall_ms or (lambda: time.time_ns() // 1000000)
        self.speed = speed
        self.align(self.wall_ms())

    def align(self, real_ms):
        """Start simulated time at `real_ms`: from then on it runs `speed`
        times as fast (the agent's clock does the same from its first read)."""
        self.anchor_real_ms = int(real_ms)
        self.anchor_sim_ms = int(real_ms)

    def now_ms(self):
        return self.sim_ms(self.wall_ms())

    def sim_ms(self, real_ms):
        return self.anchor_sim_ms + (real_ms - self.anchor_real_ms) * self.speed

    def real_seconds(self, sim_ms_span):
        """How many real seconds a simulated span takes."""
        return sim_ms_span / 1000.0 / self.speed

    def describe(self):
        return "1 s = %s simulated" % _span(self.speed)


def _span(seconds):
    if seconds % 3600 == 0:
        return "%d h" % (seconds // 3600)
    if seconds % 60 == 0:
        return "%d min" % (seconds // 60)
    return "%d s" % seconds


def agent_clock_env(clock, directory):
    """Write the agent's clock file in `directory`; return the environment
    that makes the daemon use it (THE hook)."""
    path = os.path.join(directory, "sim-clock.json")
    atomic_write(path, '{"offset_ms": 0, "speed": %d}\n' % clock.speed, durable=False)
    return {AGENT_CLOCK_ENV: path}


def align_to_agent_event(clock, fields):
    """Called with each agent log event: the first reading of the agent's
    clock follows its `journal_open` line, so both clocks start there."""
    if fields.get("event") == AGENT_CLOCK_ALIGN_EVENT:
        try:
            clock.align(int(float(fields["ts"]) * 1000))
        except (KeyError, ValueError):
            pass
