"""What sync needs from the journal file (SPEC 6.6): commit notifications,
the cursors noted for the next commit, incremental frame reading, and the
ack anchor file.

- `SyncJournal` is JournalFile (whose `note_cursors(acked, released)` makes
  the next commit's checkpoint carry new cursors, instead of a checkpoint of
  its own per ack: that would be a new record to send, acked again, for
  ever) plus commit listeners (wake the sync loop), `noted_cursors()`,
  `effective_fill()` counting noted cursors, and `snapshot()`.
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
from daozhang.agent.journal_file import JournalFile
from daozhang.agent.storage import fsync_directory

READ_SLACK = record.MAX_BODY + record.OVERHEAD


class SyncJournal(JournalFile):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.commit_listeners = []       # called with next_seq after each commit

    def noted_cursors(self):
        """(acked, released) the next commit will carry (noted or committed)."""
        with self._cv:
            return self._noted_cursors or (self.ring.acked, self.ring.released)

    def _flush(self, tickets, acked=None, released=None):
        if acked is not None or released is not None:
            # An explicit cursor commit must not move noted cursors back.
            noted = self._noted_cursors
            if noted is not None:
                acked = noted[0] if acked is None else max(acked, noted[0])
                released = noted[1] if released is None else max(released, noted[1])
        before = self.commits
        super()._flush(tickets, acked, released)
        if self.commits != before:
            for listener in list(self.commit_listeners):
                try:
                    listener(self.ring.next_seq)
                except Exception:
                    pass

    def effective_fill(self):
        """Fraction of segments that hold unreleased records, counting noted
        cursors.  O(n log n) in the segment count: cheap enough per event."""
        released = self.noted_cursors()[1]
        with self._cv:
            ring = self.ring
            used = sorted((first, index) for index, first in enumerate(ring.first_seqs)
                          if first is not None)
            next_seq, head = ring.next_seq, ring.head_index
        count = 0
        for k, (first, index) in enumerate(used):
            last = used[k + 1][0] - 1 if k + 1 < len(used) else next_seq - 1
            if index == head or last >= released:
                count += 1
        return count / self.geo.segment_count

    def snapshot(self):
        """(first_seqs, next_seq, write_pos, head_index) of committed state."""
        with self._cv:
            ring = self.ring
            return list(ring.first_seqs), ring.next_seq, ring.write_pos, ring.head_index


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
        first_seqs, next_seq, write_pos, head_index = snapshot(self.journal)
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


def snapshot(journal):
    """(first_seqs, next_seq, write_pos, head_index) of any JournalFile-like object."""
    own = getattr(journal, "snapshot", None)
    if own is not None:
        return own()
    with journal._cv:
        ring = journal.ring
        return list(ring.first_seqs), ring.next_seq, ring.write_pos, ring.head_index


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
