"""Startup replays that read past a rotten record instead of dying on it.

The intake index and the settlement watchdog rebuild from the journal at
start.  `JournalFile.records` raises on a frame that fails its CRC; at start
that killed the agent ("daozhang: offset 96: CRC mismatch") before READY,
so one flipped bit in an *older* segment (which recovery rightly leaves to
the scrub, SPEC 3.9) kept the terminal from taking sales at all.  Here the
damaged segment's walk ends at the bad frame, the caller is told (it logs a
critical line naming where), and the walk resumes at the next segment's
first record.  Nothing is laundered: the journal is not touched, and the
background scrub raises `journal_damaged` for the same bytes.
"""

from daozhang.agent.core.errors import DecodeError


def readable_records(journal, from_seq, on_damage):
    """Committed records from `from_seq` (None: oldest kept), in order.

    `on_damage(error, segment_first_seq, resume_seq)` is called for each
    damaged segment; `resume_seq` is None when no later segment exists.
    """
    seq = from_seq
    while True:
        try:
            for rec in journal.records(from_seq=seq):
                seq = rec.seq + 1
                yield rec
            return
        except DecodeError as exc:
            first_seqs = sorted(s for s in journal.snapshot()[0] if s is not None)
            here = seq if seq is not None else (first_seqs[0] if first_seqs else 0)
            segment_first = max((s for s in first_seqs if s <= here), default=here)
            later = [s for s in first_seqs if s > here]
            resume = later[0] if later else None
            on_damage(exc, segment_first, resume)
            if resume is None:
                return
            seq = resume
