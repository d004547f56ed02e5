"""Finding the newest committed state after a crash (SPEC 3.9).

Pure functions over bytes the adapter read: the header table and one or two
segments.  Nothing here writes; the ring decides what to zero.
Portable: CPython and MicroPython.
"""

from . import layout
from . import record
from .errors import JournalCorrupt


class SegmentScan:
    """What a walk over one segment found.

    `tail` is the offset (within the segment) just past the last checkpoint,
    or None when the segment holds no valid checkpoint; `dirty_end` is the
    offset just past the last non-zero byte after the tail (== tail when the
    rest of the segment is clean); `cut_records` counts valid frames after
    the tail (uncommitted records that recovery discards).
    """

    __slots__ = ("index", "tail", "dirty_end", "checkpoint", "next_seq", "head_hash",
                 "cut_records", "stop_reason")

    def __init__(self, index):
        self.index = index
        self.tail = None
        self.dirty_end = None
        self.checkpoint = None
        self.next_seq = None
        self.head_hash = None
        self.cut_records = 0
        self.stop_reason = None


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
    after_ckpt = 0
    while off < len(buf):
        try:
            rec = record.decode_at(buf, off)
        except record.FrameError as exc:
            scan.stop_reason = exc.reason
            break
        if rec is None:
            scan.stop_reason = "erased"
            break
        if rec.seq != seq or rec.prev != prev:
            scan.stop_reason = "chain"
            break
        seq += 1
        prev = rec.hash
        off += rec.size
        if rec.type == record.TYPE_CHECKPOINT:
            scan.checkpoint = rec
            scan.tail = off
            scan.next_seq = seq
            scan.head_hash = rec.hash
            after_ckpt = 0
        else:
            after_ckpt += 1
    if scan.tail is not None:
        scan.cut_records = after_ckpt
        scan.dirty_end = _last_nonzero(buf, scan.tail)
    return scan
