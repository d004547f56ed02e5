"""Startup replays read past a rotten record (agent/replay_records.py).

Invariant: a record that fails its check ends its segment's walk, the caller
is told which segment and where the walk resumes, and every record of the
other segments is still replayed, in order; the journal is only read.
"""

from types import SimpleNamespace

from daozhang.agent.core.journal.record import FrameError
from daozhang.agent.replay_records import readable_records


class SegmentedJournal:
    """Segments of consecutive seqs; `rotten` seqs raise like a CRC mismatch."""

    def __init__(self, firsts, next_seq, rotten=()):
        self.firsts, self.next_seq, self.rotten = firsts, next_seq, set(rotten)

    def snapshot(self):
        return list(self.firsts), self.next_seq, 0, 0

    def records(self, from_seq=None):
        for seq in range(self.firsts[0] if from_seq is None else from_seq, self.next_seq):
            if seq in self.rotten:
                raise FrameError(96, "crc", "CRC mismatch")
            yield SimpleNamespace(seq=seq)


def replay(journal, from_seq=None):
    damage = []
    seqs = [r.seq for r in readable_records(journal, from_seq, lambda e, first, resume: damage.append((first, resume)))]
    return seqs, damage


def test_rot_in_the_oldest_segment_skips_only_the_rest_of_that_segment():
    seqs, damage = replay(SegmentedJournal([0, 10, 20], 30, rotten={3}))
    assert seqs == [0, 1, 2] + list(range(10, 30))
    assert damage == [(0, 10)]


def test_rot_at_the_cursor_and_in_the_newest_segment_are_both_reported():
    seqs, damage = replay(SegmentedJournal([100, 110, 120], 125, rotten={105, 122}), from_seq=105)
    assert seqs == list(range(110, 122))
    assert damage == [(100, 110), (120, None)]


def test_an_intact_journal_replays_everything_and_reports_nothing():
    assert replay(SegmentedJournal([0, 10], 15)) == (list(range(15)), [])
