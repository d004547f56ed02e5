"""Committed journal frames, read incrementally for sync (SPEC 6.6).

`FrameReader.read(from_seq, max_bytes)` returns consecutive committed
frames, raw as on disk, reading at most about max_bytes + one frame from the
file, continuing where the previous read stopped: memory is bounded whatever
the backlog.  (Cursors noted for the next commit, commit listeners,
snapshot() and effective_fill() are JournalFile's own; the ack anchor file
is agent/ack_anchor.py.)
"""

import hashlib

from daozhang.agent.core.journal import layout
from daozhang.agent.core.journal import record

READ_SLACK = record.MAX_BODY + record.OVERHEAD
LOCATE_READ_SIZE = 1 << 18


def iter_frames(pread, off, end, read_size):
    """(offset, frame bytes) of consecutive frames from `off` up to `end`.

    Reads `end - off` in pieces of at most `read_size` bytes (but a frame is
    always returned whole, even one longer than read_size).  A frame that
    crosses the end of a piece is learned from its header alone and read
    again from its start with the next piece: where the pieces fall never
    changes what is returned.  Stops at erased space or `end`; a header that
    claims to run past `end` is a FrameError naming the absolute offset.
    """
    read_size = max(read_size, record.HEADER_SIZE)
    while off < end:
        chunk = pread(off, min(end - off, read_size))
        k = 0
        while True:
            if k + 2 > len(chunk) and off + k + 2 <= end:
                break                       # the next header starts in the next piece
            if k + record.HEADER_SIZE > len(chunk) and off + k + record.HEADER_SIZE <= end \
                    and chunk[k:k + 2] != b"\x00\x00":
                break
            try:
                size = record.frame_size_from_header(chunk, k)
            except record.FrameError as exc:   # name the file offset, not the piece's
                raise record.FrameError(off + k, exc.reason, str(exc).split(": ", 1)[-1]) from None
            if size == 0:
                return                      # erased space: the segment ends here
            if off + k + size > end:
                raise record.FrameError(off + k, "short", "frame of %d bytes runs past the "
                                        "segment end at %d" % (size, end))
            if k + size > len(chunk):
                if k == 0:                  # a frame longer than one piece: read it whole
                    yield off, pread(off, size)
                    k = size
                break
            yield off + k, chunk[k:k + size]
            k += size
        off += k


class FrameReader:
    """Consecutive committed frames from a JournalFile, read incrementally.

    `read_size` bounds one pread while locating a record (default 256 KiB)
    and while reading a batch (default max_bytes + one frame).
    """

    def __init__(self, journal, read_size=None):
        self.journal = journal
        self.read_size = read_size
        self._pos = None     # (seq, absolute offset, segment) where the last read stopped

    def _locate(self, from_seq, first_seqs, next_seq, write_pos, head_index):
        """Absolute file offset of record from_seq: a walk over frame lengths."""
        geo = self.journal.geo
        best = None
        for index, first in enumerate(first_seqs):
            if first is not None and first <= from_seq and (best is None or first > best[0]):
                best = (first, index)
        if best is None:
            raise KeyError(from_seq)
        seq, index = best
        base = geo.segment_offset(index)
        end = write_pos if index == head_index else base + geo.segment_size
        off = base + layout.SEGMENT_HEADER_SIZE
        if seq == from_seq:
            return off, index
        for at, frame in iter_frames(self.journal.storage.pread, off, end,
                                     self.read_size or LOCATE_READ_SIZE):
            seq += 1
            if seq == from_seq:
                return at + len(frame), index
        raise KeyError(from_seq)

    def read(self, from_seq, max_bytes):
        """(records, end, last_hash): records are (seq, type, frame) from from_seq.

        Returns at least one frame when from_seq < next_seq, at most
        max_bytes of frames beyond the first, none past the committed tail.
        """
        first_seqs, next_seq, write_pos, head_index = self.journal.snapshot()
        if from_seq >= next_seq:
            return [], from_seq, None
        geo = self.journal.geo
        if self._pos is not None and self._pos[0] == from_seq:
            off, index = self._pos[1], self._pos[2]
        else:
            off, index = self._locate(from_seq, first_seqs, next_seq, write_pos, head_index)
        records = []
        size = 0
        seq = from_seq
        pread = self.journal.storage.pread
        read_size = self.read_size or max(max_bytes, 0) + READ_SLACK
        while seq < next_seq and size < max_bytes:
            base = geo.segment_offset(index)
            seg_end = write_pos if index == head_index else base + geo.segment_size
            full = False
            for at, frame in iter_frames(pread, off, seg_end, read_size):
                if records and size + len(frame) > max_bytes:
                    full = True
                    break
                records.append((seq, frame[2], frame))
                size += len(frame)
                off = at + len(frame)
                seq += 1
                if seq >= next_seq or size >= max_bytes:
                    full = True
                    break
            if full or seq >= next_seq:
                break
            # This segment is done: the next in seq order starts at `seq`.
            nxt = [i for i, s in enumerate(first_seqs) if s == seq]
            if not nxt:
                break
            index = nxt[0]
            off = geo.segment_offset(index) + layout.SEGMENT_HEADER_SIZE
        self._pos = (seq, off, index)
        if not records:
            return [], from_seq, None
        last = records[-1][2]
        return records, seq, hashlib.sha256(last[:-record.CRC_SIZE]).digest()

    def hash_at(self, seq):
        """Hash of committed record `seq`, or None if the journal does not hold it."""
        saved = self._pos
        try:
            records, _, last_hash = self.read(seq, 1)
        except (KeyError, Exception):
            return None
        finally:
            self._pos = saved
        if not records or records[0][0] != seq:
            return None
        return last_hash
