"""The board's journal as sync reads it (SPEC 6.6): committed frames by seq.

    reader = FrameReader(journal.storage, journal.ring)
    records, end, last_hash = reader.read(from_seq, max_bytes)   # (seq, type, frame)
    reader.hash_at(seq)                                          # or None

What agent/frame_reader.py does for the Linux agent's file, for the ring on a
microcontroller: two small preads a frame (header, then the frame), so the
heap holds one batch of at most max_bytes plus one frame whatever the
backlog.  A read continues where the previous stopped; any other start walks
the frame lengths from the start of the segment holding it (one segment,
64 KiB on the shipped board, read a header at a time).
"""

from daozhang.agent.core.journal import layout, record


class FrameReader:
    def __init__(self, storage, ring):
        self.storage = storage
        self.ring = ring
        self._pos = None          # (seq, offset, segment index) where the last read stopped

    def _segment_end(self, index):
        if index == self.ring.head_index:
            return self.ring.write_pos
        return self.ring.geo.segment_offset(index) + self.ring.geo.segment_size

    def _frame_at(self, off, end):
        """The frame at `off`, or None at erased space / the segment's end."""
        if off + 2 > end:
            return None
        header = self.storage.pread(off, min(record.HEADER_SIZE, end - off))
        size = record.frame_size_from_header(header, 0)
        if size == 0:
            return None
        if off + size > end:
            raise record.FrameError(off, "short", "frame of %d bytes runs past the segment end at %d" % (size, end))
        return self.storage.pread(off, size)

    def _locate(self, seq):
        best = None
        for index, first in enumerate(self.ring.first_seqs):
            if first is not None and first <= seq and (best is None or first > best[0]):
                best = (first, index)
        if best is None:
            raise KeyError(seq)
        at, index = best
        off = self.ring.geo.segment_offset(index) + layout.SEGMENT_HEADER_SIZE
        end = self._segment_end(index)
        while at < seq:
            frame = self._frame_at(off, end)
            if frame is None:
                raise KeyError(seq)
            off += len(frame)
            at += 1
        return off, index

    def read(self, from_seq, max_bytes):
        ring = self.ring
        if from_seq >= ring.next_seq:
            return [], from_seq, None
        if self._pos is not None and self._pos[0] == from_seq:
            off, index = self._pos[1], self._pos[2]
        else:
            off, index = self._locate(from_seq)
        records, size, seq = [], 0, from_seq
        while seq < ring.next_seq:
            frame = self._frame_at(off, self._segment_end(index))
            if frame is None:                     # this segment is done: the next starts at seq
                index = _segment_starting(ring.first_seqs, seq)
                if index is None:
                    break
                off = ring.geo.segment_offset(index) + layout.SEGMENT_HEADER_SIZE
                continue
            if records and size + len(frame) > max_bytes:
                break
            records.append((seq, frame[2], frame))
            size += len(frame)
            off += len(frame)
            seq += 1
            if size >= max_bytes:
                break
        self._pos = (seq, off, index)
        if not records:
            return [], from_seq, None
        last = records[-1][2]
        return records, seq, record.sha256(last[:-record.CRC_SIZE])

    def hash_at(self, seq):
        saved = self._pos
        try:
            records, _, last_hash = self.read(seq, 1)
        except (KeyError, record.FrameError):
            return None
        finally:
            self._pos = saved
        return last_hash if records and records[0][0] == seq else None


def _segment_starting(first_seqs, seq):
    for index, first in enumerate(first_seqs):
        if first == seq:
            return index
    return None
