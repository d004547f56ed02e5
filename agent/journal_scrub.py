"""Background scrub: re-verify the retained journal at a bounded I/O rate.

Bit rot in an older segment is invisible to recovery (it reads only the
newest segment) until a technician pulls the journal - by then the backend
may have pruned its copy.  The scrub walks every in-use segment, oldest
first, round and round, reading at most `rate` bytes a second
(journal.scrub_bytes_per_s on the board), and raises `journal_damaged` on
the first damage it finds in each segment.

Correct for any read size and any frame position: a segment is read into one
preallocated buffer in chunks of whatever size the budget allows, and
parsed only once it is whole, so a frame crossing a chunk boundary is never
seen in halves.  Memory: one segment.  A segment the ring reuses while it is
being read is dropped (its first_seq changed), never reported.

Checks per segment (SPEC 3.2-3.6): every frame decodes (magic, length, CRC,
canonical CBOR), sequence numbers follow from the header's first_seq (a
salvage record may jump, 3.14), each record chains to the one before it from
the header's prev_hash, a segment other than the head ends with a
checkpoint, and every byte after its last record is zero.  Signatures are
the verifier's job; the chain plus the CRC already catch rot.
"""

import threading

from daozhang.agent.core.journal import layout, record, recovery

DEFAULT_RATE = 256 * 1024
INTERVAL_S = 1.0


class Scrubber:
    """The scrub's state machine, driven by `step(budget)`; no thread, no clock."""

    def __init__(self, journal, on_damage):
        self.journal = journal
        self.on_damage = on_damage        # f(segment, file offset, seq or None, reason)
        self.buf = bytearray(journal.geo.segment_size)
        self.index = None                 # segment being read
        self.first_seq = None             # its first_seq when reading began
        self.end = 0                      # bytes of it to read (the head: up to the tail)
        self.pos = 0
        self.is_head = False
        self.segments_checked = 0
        self.damage_found = 0

    def _next_segment(self):
        first_seqs, next_seq, write_pos, head_index = self.journal.snapshot()
        order = sorted((s, i) for i, s in enumerate(first_seqs) if s is not None)
        if not order:
            return False
        after = [(s, i) for s, i in order if self.first_seq is None or s > self.first_seq]
        first, index = (after or order)[0]
        geo = self.journal.geo
        self.index, self.first_seq, self.pos = index, first, 0
        self.is_head = index == head_index
        self.end = write_pos - geo.segment_offset(index) if self.is_head else geo.segment_size
        return True

    def step(self, budget):
        """Read up to `budget` bytes; check a segment once it is whole.  Returns bytes read."""
        done = 0
        while done < budget:
            if self.index is None and not self._next_segment():
                return done
            n = min(budget - done, self.end - self.pos)
            if n > 0:
                base = self.journal.geo.segment_offset(self.index)
                data = self.journal.storage.pread(base + self.pos, n)
                self.buf[self.pos:self.pos + len(data)] = data
                self.pos += len(data)
                done += len(data)
            if self.pos >= self.end:
                self._check()
                self.index = None
        return done

    def _check(self):
        first_seqs = self.journal.snapshot()[0]
        if first_seqs[self.index] != self.first_seq:
            return                        # reused while we read it: nothing to say about it
        self.segments_checked += 1
        problem = check_segment(memoryview(self.buf)[:self.end], self.index, self.journal.geo, self.is_head)
        if problem is not None:
            offset, seq, reason = problem
            self.damage_found += 1
            self.on_damage(self.index, self.journal.geo.segment_offset(self.index) + offset, seq, reason)


def check_segment(buf, index, geo, is_head):
    """None, or (offset in segment, seq or None, reason) of the first damage."""
    buf = bytes(buf)
    header = layout.decode_segment_header(buf[:layout.SEGMENT_HEADER_SIZE], index, geo.journal_id)
    if header is None:
        return 0, None, "segment header no longer valid"
    seq, prev = header
    off = layout.SEGMENT_HEADER_SIZE
    last_type = None
    while off < len(buf):
        try:
            rec = record.decode_at(buf, off)
        except record.FrameError as exc:
            return off, seq, "record frame: %s" % exc.message
        if rec is None:
            break
        if rec.prev != prev or (rec.seq != seq and not recovery.salvage_skips(rec, seq)):
            return off, seq, "record %d does not chain (expected seq %d)" % (rec.seq, seq)
        seq, prev, last_type = rec.seq + 1, rec.hash, rec.type
        off += rec.size
    if off < len(buf) and any(buf[off:]):
        return off, seq, "non-zero bytes after the last record"
    if not is_head and last_type != record.TYPE_CHECKPOINT:
        return off, seq, "segment does not end with a checkpoint"
    return None


class ScrubPlugin:
    """The daemon's part: a thread stepping the Scrubber at `rate` bytes a
    second; `alert(kind, severity, detail)` on damage (agent/assemble.py)."""

    def __init__(self, journal, log, alert, rate=DEFAULT_RATE):
        self.log = log
        self.alert = alert
        self.scrubber = Scrubber(journal, self._damage)
        self.rate = rate
        self._stop = threading.Event()
        self._thread = None
        self._reported = set()

    def _damage(self, segment, offset, seq, reason):
        key = (segment, offset)
        if key in self._reported:          # one alert per damage, not one per lap
            return
        self._reported.add(key)
        detail = {"segment": segment, "offset": offset, "seq": seq, "detail": reason}
        self.log("journal_damaged", level="critical", at="scrub", segment=segment, offset=offset)
        self.alert("journal_damaged", "critical", detail)

    def _run(self):
        while not self._stop.wait(INTERVAL_S):
            try:
                self.scrubber.step(int(self.rate * INTERVAL_S))
            except Exception as exc:      # a read error is the writer's to report; keep scrubbing
                self.log("scrub_error", level="warning", error=type(exc).__name__)

    def start(self):
        self._thread = threading.Thread(target=self._run, name="journal-scrub", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def alive(self):
        return True
