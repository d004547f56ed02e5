"""Helpers for the portable test modules (CPython under pytest, and
MicroPython 1.29 under tests/mp/portable_runner.py): no pytest here."""

from daozhang.agent.core.journal import layout

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
        from daozhang.agent.core.journal.ring import Clock
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


CST = 28800
PROFILE = {"merchant_id": "102290058120001", "terminal_id": "MCU00001", "mcc": "5812",
           "region": "2900", "timezone": "Asia/Shanghai", "currency": "CNY",
           "settlement": {"mode": "T1", "cutoff": "23:00", "cutoff_minutes": 1380,
                          "d0_within_minutes": 120, "holidays": [], "workdays": []},
           "fees": {"tolerance": 1, "d0_surcharge": 200,
                    "card_types": {"debit": {"bp": 55, "cap": 2000}, "credit": {"bp": 60, "cap": None}}}}


class HeapMark:
    """The live heap under MicroPython between steps (gc.mem_alloc after
    gc.collect: the WebAssembly port frees garbage only between runPython
    calls), less `base` (what a board does not hold on its heap: the modules,
    frozen in flash, and a fake flash), and its high-water mark."""

    def __init__(self):
        self.base = 0
        self.peak = 0
        self.where = ""

    def now(self):
        import gc
        gc.collect()
        return gc.mem_alloc()

    def mark(self, where):
        used = self.now() - self.base
        if used > self.peak:
            self.peak, self.where = used, where
        return used

    def line(self):
        return "HEAP_PEAK %d %s" % (self.peak, self.where.replace(" ", "_"))


class Rand:
    """A seeded LCG: the same history on both interpreters."""

    def __init__(self, seed):
        self.x = seed

    def below(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n


def calendar():
    from daozhang.agent.core.business_calendar import BusinessCalendar, FixedOffset
    return BusinessCalendar.from_profile(PROFILE, FixedOffset(CST))


def sale(n, wall_ms, amount=1250):
    """A valid card sale (SPEC 5.2) at `wall_ms`; the card masked, 6+4."""
    from daozhang.agent.core.business_calendar import format_rfc3339
    return {"kind": "sale", "pos_txn_id": "MCU-%d" % n, "time": format_rfc3339(wall_ms // 1000, CST),
            "amount": amount, "currency": "CNY", "card": "622202******%04d" % (n % 10000),
            "card_type": "debit", "auth_code": "%06d" % n, "rrn": "%012d" % n,
            "merchant_id": PROFILE["merchant_id"], "terminal_id": PROFILE["terminal_id"],
            "mcc": "5812", "settlement": "T1"}


class Pin:
    """machine.Pin stand-in: remembers every value written."""

    def __init__(self):
        self.values = []

    def value(self, v=None):
        if v is None:
            return self.values[-1] if self.values else 0
        self.values.append(v)


class Display:
    def __init__(self):
        self.lines = []

    def show(self, text):
        self.lines.append(text)


class WDT:
    def __init__(self):
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class UART:
    """machine.UART stand-in: bytes queued by the test, answers collected."""

    def __init__(self):
        self.rx = b""
        self.tx = b""

    def any(self):
        return len(self.rx)

    def read(self, n=None):
        data, self.rx = self.rx, b""
        return data

    def write(self, data):
        self.tx += data
        return len(data)


def records(storage, ring):
    """Every record up to the ring's tail, oldest segment first.  (As
    dztest/journal_kit.read_records, which MicroPython cannot import: it
    brings in cryptography.)"""
    from daozhang.agent.core.journal import record
    geo = ring.geo
    out = []
    for first, index in sorted((s, i) for i, s in enumerate(ring.first_seqs) if s is not None):
        buf = storage.pread(geo.segment_offset(index), geo.segment_size)
        off = layout.SEGMENT_HEADER_SIZE
        while off < len(buf):
            rec = record.decode_at(buf, off)
            if rec is None or rec.seq >= ring.next_seq:
                break
            out.append(rec)
            off += rec.size
    return out


def scratch_path(name):
    """A fresh file path for a test (a temp dir on CPython, the RAM filesystem's root under MicroPython)."""
    try:
        import tempfile
        return tempfile.mkdtemp(prefix="dz-portable") + "/" + name
    except ImportError:
        import os
        path = "/" + name
        try:
            os.remove(path)
        except OSError:
            pass
        return path


def from_json(v):
    """A vector's JSON value with {"$bytes": hex} turned back into bytes (tests/vectors/README.md)."""
    import binascii
    if isinstance(v, dict):
        if list(v) == ["$bytes"]:
            return binascii.unhexlify(v["$bytes"])
        return dict((k, from_json(x)) for k, x in v.items())
    if isinstance(v, list):
        return [from_json(x) for x in v]
    return v


def intake_events(stream, chunk):
    """What the intake's FrameDecoder makes of `stream` fed `chunk` bytes at a
    time, then end of stream: [{"object"} | {"error": code} | {"fatal": code}]."""
    from daozhang.agent.core.intake import intake_frames
    dec = intake_frames.FrameDecoder()
    out = []
    pieces = [stream[i:i + chunk] for i in range(0, len(stream), chunk)]
    for piece in pieces + [b""]:
        dec.receive_data(piece)
        while True:
            try:
                ev = dec.next_event()
            except intake_frames.FrameError as exc:
                out.append({"fatal": exc.code})
                return out
            if ev == intake_frames.NEED_DATA or ev == intake_frames.CLOSED:
                break
            out.append({"error": ev.error.code} if ev.error is not None else {"object": ev.obj})
    return out


def service_events(stream):
    """What a service-port FrameCodec makes of `stream`: [{"bad", "dropped"} | {"type", "seq", "payload"}]."""
    from daozhang.agent.core.service import service_frames
    codec = service_frames.FrameCodec()
    codec.receive_data(stream)
    out = []
    while True:
        ev = codec.next_event()
        if ev is service_frames.NEED_DATA:
            return out
        if isinstance(ev, service_frames.BadFrame):
            out.append({"bad": ev.reason, "dropped": ev.dropped})
        else:
            out.append({"type": ev.type, "seq": ev.seq, "payload": ev.payload})
