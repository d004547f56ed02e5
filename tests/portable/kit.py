"""Helpers for the portable test modules (CPython under pytest, and
MicroPython 1.29 under tests/mp/portable_runner.py): no pytest here."""

from daozhang.agent.core import layout

JOURNAL_ID = b"J" * 16
CREATED_MS = 1764115200000


def raises(exc_type, fn, *args, **kwargs):
    """Call fn; return the exception of exc_type it raised, fail otherwise."""
    try:
        fn(*args, **kwargs)
    except exc_type as exc:
        return exc
    raise AssertionError("%s did not raise %s" % (getattr(fn, "__name__", fn), exc_type.__name__))


def fresh_image(segment_size=8192, segment_count=4, device_id="portable-pos"):
    geo = layout.Geometry(segment_size, segment_count, JOURNAL_ID, device_id, CREATED_MS)
    return geo.encode() + bytes(geo.file_size - layout.SUPERBLOCK_SIZE)


class StepClock:
    """An injected clock: wall and monotonic ms advance by `step` per call."""

    def __init__(self, wall_ms=CREATED_MS, step=1000, boot_id=b"B" * 8):
        self.wall_ms = wall_ms
        self.mono_ms = 0
        self.step = step
        self.boot_id = boot_id

    def now(self):
        from daozhang.agent.core.ring import Clock
        self.wall_ms += self.step
        self.mono_ms += self.step
        return Clock(self.wall_ms, self.boot_id, self.mono_ms)


def vector(name):
    """Parsed JSON of tests/vectors/<name> (at /vectors on MicroPython)."""
    import json
    try:
        import os
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.path.join(here, "vectors", name)
    except (ImportError, AttributeError):      # MicroPython: no os.path
        path = "/vectors/" + name
    with open(path) as f:
        return json.load(f)
