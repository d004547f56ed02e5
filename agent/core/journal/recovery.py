"""Finding the newest committed state after a crash (SPEC 3.9).

Pure functions over bytes the adapter read: the header table and one or two
segments.  Nothing here writes; the ring decides what to zero and what to
set aside first.

The rule (SPEC 3.9): only the torn tail of the *last* commit may be cut.
Bytes after the last valid checkpoint are a torn write only when every valid
frame among them belongs to one commit that starts at the tail (sequence
numbers from the next expected one on, at most one checkpoint, whose `first`
is that sequence) and nothing non-zero lies past that commit's end.  Anything
else - a later commit, an older record, bytes past the commit - proves
committed data was damaged: `JournalDamaged`, and nothing is changed.
Portable: CPython and MicroPython.
"""

from daozhang.agent.core.errors import JournalCorrupt, JournalDamaged
from daozhang.agent.core.journal import layout
from daozhang.agent.core.journal import record


class SegmentScan:
    """What a walk over one segment found.

    `tail` is the offset (within the segment) just past the last checkpoint,
    or None when the segment holds no valid checkpoint; `dirty_end` is the
    offset just past the last non-zero byte after the tail (== tail when the
    rest of the segment is clean); `cut_records` counts valid frames after
    the tail (uncommitted records that recovery sets aside); `stop_offset`
    is where the walk stopped (a bad frame, or erased space).
    """

    __slots__ = ("index", "tail", "dirty_end", "checkpoint", "next_seq", "head_hash",
                 "cut_records", "stop_reason", "stop_offset", "last_seen_seq")

    def __init__(self, index):
        self.index = index
        self.tail = None
        self.dirty_end = None
        self.checkpoint = None
        self.next_seq = None
        self.head_hash = None
        self.cut_records = 0
        self.stop_reason = None
        self.stop_offset = None
        self.last_seen_seq = None


def in_use_segments(geometry, headers):
    """Ring order of the in-use segments, oldest first, from the header table.

    `headers[i]` is the 96 bytes at the start of segment i.  Returns a list of
    (index, first_seq, prev_hash).  The in-use segments must be consecutive in
    ring order with increasing first_seq, else JournalCorrupt.
    """
    found = []
    for index in range(geometry.segment_count):
        parsed = layout.decode_segment_header(headers[index], index, geometry.journal_id)
        if parsed is not None:
            found.append((parsed[0], index, parsed[1]))
    found.sort()
    n = geometry.segment_count
    for k in range(1, len(found)):
        if found[k][1] != (found[k - 1][1] + 1) % n:
            raise JournalCorrupt("segments %d and %d are in use but not adjacent in ring order"
                                 % (found[k - 1][1], found[k][1]))
        if found[k][0] <= found[k - 1][0]:
            raise JournalCorrupt("segment %d repeats sequence %d" % (found[k][1], found[k][0]))
    return [(index, first_seq, prev) for (first_seq, index, prev) in found]


def damaged_headers(geometry, headers, in_use):
    """Indexes of free segments whose header is neither valid nor all zero."""
    used = set(index for index, _, _ in in_use)
    return [i for i in range(geometry.segment_count) if i not in used and any(headers[i])]


def _last_nonzero(buf, start):
    end = len(buf)
    # Scan backwards in chunks: a clean segment is all zeros after the tail.
    chunk = 4096
    pos = end
    zero = bytes(chunk)
    while pos > start:
        lo = max(start, pos - chunk)
        piece = buf[lo:pos]
        if piece != zero[:pos - lo]:
            for i in range(pos - 1, lo - 1, -1):
                if buf[i]:
                    return i + 1
        pos = lo
    return start


def scan_segment(buf, index, first_seq, prev_hash):
    """Walk the records of one segment's bytes (`buf` is the whole segment)."""
    scan = SegmentScan(index)
    off = layout.SEGMENT_HEADER_SIZE
    seq = first_seq
    prev = prev_hash
    while off < len(buf):
        try:
            rec = record.decode_at(buf, off)
        except record.FrameError as exc:
            scan.stop_reason = exc.reason
            break
        if rec is None:
            scan.stop_reason = "erased"
            break
        if rec.prev != prev or (rec.seq != seq and not salvage_skips(rec, seq)):
            scan.stop_reason = "chain"
            break
        seq = rec.seq + 1
        prev = rec.hash
        off += rec.size
        if rec.type == record.TYPE_CHECKPOINT:
            scan.checkpoint = rec
            scan.tail = off
            scan.next_seq = seq
            scan.head_hash = rec.hash
    scan.stop_offset = off
    start = layout.SEGMENT_HEADER_SIZE if scan.tail is None else scan.tail
    scan.dirty_end = _last_nonzero(buf, start)
    return scan


def salvage_skips(rec, expected):
    """A salvage record (SPEC 3.14) may jump the sequence over the range it
    names as lost: seq `expected`..rec.seq - 1, chained to the last record
    before the damage."""
    if rec.type != record.TYPE_SALVAGE:
        return False
    payload = rec.payload
    return payload.get("lost_first") == expected and payload.get("lost_last") == rec.seq - 1 \
        and rec.seq > expected


def valid_frames(buf, start, end):
    """Every frame in buf[start:end] that decodes (magic, length, CRC, CBOR), in order.

    Found by searching for the frame magic, so a frame is found wherever it
    lies; a valid frame is skipped whole (frames never overlap).
    """
    out = []
    pos = start
    magic = record.MAGIC
    while pos < end:
        q = buf.find(magic, pos, end)
        if q < 0:
            break
        try:
            rec = record.decode_at(buf, q)
        except record.FrameError:
            rec = None
        if rec is None or q + rec.size > end:
            pos = q + 1
            continue
        out.append(rec)
        pos = q + rec.size
    return out


def _align_up(value, align):
    return (value + align - 1) // align * align


def classify_tail(buf, scan, first_seq, align, base=0):
    """After the walk: (cut_records, None) if the bytes after the tail are at
    most a torn last commit, else (None, problem) where problem is
    (offset in segment, first_seq affected, last_seq seen or None, why);
    `base` (the segment's file offset) makes the offsets in `why` file offsets."""
    tail = layout.SEGMENT_HEADER_SIZE if scan.tail is None else scan.tail
    expected = first_seq if scan.tail is None else scan.next_seq
    if scan.dirty_end <= tail:
        return 0, None
    frames = valid_frames(buf, tail, scan.dirty_end)
    bad_at = scan.stop_offset if scan.stop_reason != "erased" else tail
    last_seen = None
    for rec in frames:
        if last_seen is None or rec.seq > last_seen:
            last_seen = rec.seq
    commit_end = None
    for rec in frames:
        if rec.seq < expected:
            return None, (bad_at, expected, last_seen, "record %d at offset %d is older than the tail"
                          % (rec.seq, base + rec.offset))
        if commit_end is not None:
            return None, (bad_at, expected, last_seen, "a later commit (record %d at offset %d) follows "
                          "the damaged one" % (rec.seq, base + rec.offset))
        if rec.type == record.TYPE_CHECKPOINT:
            if rec.payload.get("first") != expected:
                return None, (bad_at, expected, last_seen, "checkpoint %d at offset %d covers from %r: a "
                              "later commit follows the damaged one" % (rec.seq, base + rec.offset,
                                                                      rec.payload.get("first")))
            commit_end = _align_up(rec.offset + rec.size, align)
    if commit_end is not None and scan.dirty_end > commit_end:
        return None, (bad_at, expected, last_seen, "non-zero bytes up to offset %d lie past the end of the "
                      "last commit (%d)" % (base + scan.dirty_end, base + commit_end))
    return len(frames), None


def damage_error(geometry, index, problem):
    """JournalDamaged naming segment, file offset and the sequence range."""
    offset, first, last, why = problem
    at = geometry.segment_offset(index) + offset
    if first is None:
        span = "unknown"
    else:
        span = "%d.." % first if last is None else "%d..%d" % (first, last)
    return JournalDamaged("journal damaged in segment %d at offset %d (records %s): %s; nothing was "
                          "changed - run `daozhang journal verify`, then `daozhang journal salvage`"
                          % (index, at, span, why), index, at, first, last)
