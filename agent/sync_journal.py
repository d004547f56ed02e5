"""What sync needs from the journal file beyond JournalFile (SPEC 6.6):
incremental frame reading and the ack anchor file.  (Cursors noted for the
next commit, commit listeners, snapshot() and effective_fill() are
JournalFile's own.)

- `FrameReader.read(from_seq, max_bytes)` returns consecutive committed
  frames, raw as on disk, reading at most about max_bytes + one frame from
  the file, continuing where the previous read stopped: memory is bounded
  whatever the backlog.
- `save_anchor` / `load_anchor`: the latest valid backend ack, kept next to
  the journal (<journal>.ack), written temp + fsync + rename + dir fsync.
"""

import hashlib
import os

from daozhang.agent.core import layout
from daozhang.agent.core import record
from daozhang.agent.storage import fsync_directory

READ_SLACK = record.MAX_BODY + record.OVERHEAD


class FrameReader:
    """Consecutive committed frames from a JournalFile, read incrementally."""

    def __init__(self, journal):
        self.journal = journal
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
        storage = self.journal.storage
        while seq < from_seq:
            chunk = storage.pread(off, min(end - off, 1 << 18))
            k = 0
            while seq < from_seq:
                length = record.frame_length_at(chunk, k) if k + 8 <= len(chunk) else -1
                if length < 0 or k + length > len(chunk):
                    break
                if length == 0:
                    raise KeyError(from_seq)
                k += length
                seq += 1
            if k == 0:
                raise KeyError(from_seq)
            off += k
        return off, index

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
        storage = self.journal.storage
        while seq < next_seq and size < max_bytes:
            base = geo.segment_offset(index)
            seg_end = write_pos if index == head_index else base + geo.segment_size
            if off >= seg_end or (off + 2 <= seg_end and storage.pread(off, 2) == b"\x00\x00"):
                # This segment is done: the next in seq order starts at `seq`.
                nxt = [i for i, s in enumerate(first_seqs) if s == seq]
                if not nxt:
                    break
                index = nxt[0]
                off = geo.segment_offset(index) + layout.SEGMENT_HEADER_SIZE
                continue
            want = min(seg_end - off, max(max_bytes - size, 0) + READ_SLACK)
            chunk = storage.pread(off, want)
            k = 0
            while seq < next_seq and k + 8 <= len(chunk):
                length = record.frame_length_at(chunk, k)
                if length == 0 or k + length > len(chunk):
                    break
                if records and size + length > max_bytes:
                    break
                records.append((seq, chunk[k + 2], chunk[k:k + length]))
                size += length
                k += length
                seq += 1
            if k == 0:
                if off + 2 <= seg_end and chunk[:2] == b"\x00\x00":
                    off = seg_end      # erased space: move on
                    continue
                break
            off += k
            if records and size >= max_bytes:
                break
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



def anchor_path(journal_path):
    return journal_path + ".ack"


def save_anchor(journal_path, payload):
    """Atomically replace <journal>.ack with the ack's payload bytes."""
    path = anchor_path(journal_path)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_directory(path)


def load_anchor(journal_path):
    """The saved ack payload bytes, or None."""
    try:
        with open(anchor_path(journal_path), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
