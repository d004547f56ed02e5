"""The board's journal as the umqtt sync adapter (firmware/umqtt_link.py)
asks for it: committed frames by seq, noted cursors that ride on the next
commit, the effective fill, and the ack anchor.

    LinkJournal(micro_journal, anchor_path="/state/journal.ack")

- read/hash_at: firmware/journal_frames.py over the ring (one batch on the heap);
- note_cursors: what the backend acked and the watchdog no longer needs
  goes into the next commit's checkpoint (MicroJournal.note_cursors); the
  next sale or alert carries it, flush_cursors() commits it at once (the
  sync rules ask before raising journal_near_full);
- fill: the fraction of segments holding records not yet released,
  counting the noted cursors (as the Linux agent's effective_fill);
- the anchor (the newest valid backend ack, SPEC 6.6) in a small file on
  the board's littlefs, replaced by write + rename; without a path it is
  kept in memory (the cursors in the journal's checkpoints still survive
  a reset, the anchor only saves resending what the last ack covered).
"""

import os

from daozhang.firmware.journal_frames import FrameReader


class LinkJournal:
    def __init__(self, journal, anchor_path=None):
        self.journal = journal
        self.ring = journal.ring
        self.reader = FrameReader(journal.storage, journal.ring)
        self.anchor_path = anchor_path
        self._anchor = None

    def tail(self):
        return self.ring.next_seq

    def read(self, from_seq, max_bytes):
        return self.reader.read(from_seq, max_bytes)

    def hash_at(self, seq):
        return self.reader.hash_at(seq)

    def cursors(self):
        return self.journal.noted

    def note_cursors(self, acked, released):
        self.journal.note_cursors(acked, released)

    def cursors_pending(self):
        return self.journal.noted != (self.ring.acked, self.ring.released)

    def flush_cursors(self):
        self.journal.set_cursors()

    def fill(self):
        ring = self.ring
        return ring.segments_unreleased(self.journal.noted[1]) / ring.geo.segment_count

    def save_anchor(self, payload):
        self._anchor = payload
        if self.anchor_path is None:
            return
        tmp = self.anchor_path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(payload)
        os.rename(tmp, self.anchor_path)      # littlefs renames atomically

    def load_anchor(self):
        if self.anchor_path is None:
            return self._anchor
        try:
            with open(self.anchor_path, "rb") as f:
                return f.read()
        except OSError:
            return None
