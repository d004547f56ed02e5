"""Is the wall clock trustworthy? (docs/SPEC.md §9.3, journal record type 5)

A terminal without a battery-backed clock boots in 1970 or at its last
shutdown until NTP answers; a technician may set it wrong.  Every record is
stamped with the wall clock, so the agent journals what it sees:

- `before_build`: the clock reads earlier than the software's build date;
- `step_back`: it reads earlier than the newest wall time already journaled
  (more than STEP_TOLERANCE_MS back: small NTP slews are not steps);
- `trusted`: after either, the clock is past both again.

`ClockGuard.observe(now_ms)` returns the clock record payload to journal, or
None.  Portable: `now` is an argument, no time import.
"""

STEP_TOLERANCE_MS = 2000


class ClockGuard:
    def __init__(self, build_ms, last_wall_ms):
        self.build_ms = build_ms
        self.high_ms = last_wall_ms          # newest wall time journaled so far
        self.trusted = True

    def observe(self, now_ms):
        if now_ms < self.build_ms:
            event = "before_build"
        elif now_ms < self.high_ms - STEP_TOLERANCE_MS:
            event = "step_back"
        else:
            event = None
        last = self.high_ms
        if event is not None:
            was = self.trusted
            self.trusted = False
            # One record per step: a clock still behind after a step is not news,
            # unless it stepped back again past what we last observed.
            if was or now_ms < self._last_seen - STEP_TOLERANCE_MS:
                self._last_seen = now_ms
                return {"event": event, "wall_ms": now_ms, "last_wall_ms": last}
            self._last_seen = now_ms
            return None
        self._last_seen = now_ms
        self.high_ms = max(self.high_ms, now_ms)
        if not self.trusted:
            self.trusted = True
            return {"event": "trusted", "wall_ms": now_ms, "last_wall_ms": last}
        return None

    _last_seen = 0
