"""The demo's simulated clock: a business day in a few minutes.

Settlement deadlines are hours away (D0: within `d0_within_minutes`), and a
demo must show a payment going overdue and then arriving within seconds.  So
the demo runs every party on one simulated clock that starts at the real
time and runs `speed` times faster:

    sim_ms = anchor_sim_ms + (real_ms - anchor_real_ms) * speed

The POS stamps its sales with it, the acquirer its `settled_at`, and the
agent daemon judges deadlines by it.  Every process evaluates the same
formula against its own wall clock, so they agree without talking.

THE CLOCK HOOK: `agent_clock_env()` below is the one place that tells the
agent daemon about this clock.  It is the only code in the demo that knows
how the daemon takes a simulated clock (docs/readme/settlement-e2e.md).
"""

import time

DEFAULT_SPEED = 600         # 1 real second = 10 simulated minutes

# How the agent daemon takes a simulated clock: an environment variable
# "ANCHOR_REAL_MS:ANCHOR_SIM_MS:SPEED" read at start (agent/daemon.py).
AGENT_CLOCK_ENV = "DAOZHANG_SIM_CLOCK"


class DemoClock:
    def __init__(self, speed=DEFAULT_SPEED, anchor_real_ms=None, anchor_sim_ms=None,
                 wall_ms=None):
        if not isinstance(speed, int) or speed < 1:
            raise ValueError("speed: expected an integer >= 1, got %r" % (speed,))
        self.wall_ms = wall_ms or (lambda: time.time_ns() // 1000000)
        self.speed = speed
        self.anchor_real_ms = self.wall_ms() if anchor_real_ms is None else anchor_real_ms
        self.anchor_sim_ms = self.anchor_real_ms if anchor_sim_ms is None else anchor_sim_ms

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


def agent_clock_env(clock):
    """Environment for the agent daemon so it runs on `clock` (THE hook)."""
    return {AGENT_CLOCK_ENV: "%d:%d:%d" % (clock.anchor_real_ms, clock.anchor_sim_ms, clock.speed)}
