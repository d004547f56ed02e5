"""FrameReader returns the same frames whatever its read size and wherever
frames fall relative to its reads (issue 10: a resend from `acked` more than
256 KiB into a 1 MiB segment stalled sync for good).

Invariant: for any journal (segment size, record sizes, wrapped or not), any
read size, any starting seq the journal keeps and any batch size, chaining
FrameReader.read calls yields exactly the committed frames that the
journal's whole-segment reader (JournalFile.records) yields from that seq,
in order, with no gap and no repeat, each batch within its byte budget.
"""

import os
import tempfile

from hypothesis import HealthCheck, given, settings, strategies as st

from daozhang.agent.core.journal import record
from daozhang.agent.journal_file import JournalFile, create_journal
from daozhang.agent.frame_reader import FrameReader, iter_frames

from dztest.sync import signer, txn_payload

KiB = 1024


def _fill(journal, sizes, release_every=None):
    """Append one transaction per entry of `sizes` (padding bytes in the
    payload), releasing what was appended so far every `release_every`
    records so the ring can wrap."""
    for i, pad in enumerate(sizes):
        payload = txn_payload(i)
        payload["note"] = "x" * pad
        if release_every and i and i % release_every == 0:
            tail = journal.ring.next_seq
            journal.append_many([(record.TYPE_TRANSACTION, payload)], acked=tail, released=tail)
        else:
            journal.append(record.TYPE_TRANSACTION, payload)


def _expected(journal, from_seq):
    return [(rec.seq, bytes(frame)) for rec, frame in journal.records(from_seq=from_seq, with_frames=True)]


def _read_all(reader, from_seq, max_bytes, next_seq):
    got = []
    seq = from_seq
    while seq < next_seq:
        records, end, last_hash = reader.read(seq, max_bytes)
        assert records, "read(%d) returned nothing below next_seq %d" % (seq, next_seq)
        assert end == records[-1][0] + 1
        batch = sum(len(frame) for _, _, frame in records)
        assert len(records) == 1 or batch <= max_bytes
        got.extend((s, bytes(frame)) for s, _, frame in records)
        seq = end
    return got


def _journal(tmp, segment_size, segment_count):
    path = os.path.join(tmp, "journal.dz")
    create_journal(path, "pos-prop-1", size=64 * KiB + segment_size * segment_count,
                   segment_size=segment_size)
    return JournalFile.open(path, signer(7))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segment_size=st.sampled_from([8 * KiB, 12 * KiB, 16 * KiB, 64 * KiB]),
       sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=120),
       wrap=st.booleans(),
       read_size=st.one_of(st.integers(1, 4096), st.sampled_from([8 * KiB, 1 << 18])),
       max_bytes=st.integers(1, 40 * KiB),
       start=st.floats(0, 1))
def test_any_read_size_returns_the_committed_frames(segment_size, sizes, wrap, read_size, max_bytes, start):
    with tempfile.TemporaryDirectory() as tmp:
        journal = _journal(tmp, segment_size, 6)
        try:
            _fill(journal, sizes, release_every=8 if wrap else None)
        except Exception as exc:  # a full journal refuses: nothing to read past that
            assert "full" in str(exc).lower(), exc
        try:
            first_seqs, next_seq, _, _ = journal.snapshot()
            oldest = min(s for s in first_seqs if s is not None)
            from_seq = oldest + int(start * (next_seq - 1 - oldest))
            expected = _expected(journal, from_seq)
            assert expected and expected[0][0] == from_seq
            got = _read_all(FrameReader(journal, read_size=read_size), from_seq, max_bytes, next_seq)
            assert got == expected
        finally:
            journal.close()


def test_resend_from_deep_in_a_shipped_segment_after_restart(tmp_path):
    """The issue's case: 1 MiB segments (boards/generic-linux.toml), the agent
    restarts and resends from `acked` more than 256 KiB into the segment."""
    path = str(tmp_path / "journal.dz")
    create_journal(path, "pos-prop-1", size=8 << 20, segment_size=1 << 20)
    journal = JournalFile.open(path, signer(7))
    _fill(journal, [200 + (i * 37) % 400 for i in range(1800)])
    journal.close()
    journal = JournalFile.open(path, signer(7))          # the restart: a fresh reader, no position
    try:
        _, next_seq, _, _ = journal.snapshot()
        by_seq = {s: f for s, f in _expected(journal, 0)}
        offsets = {rec.seq: rec.offset for rec in journal.records()}
        deep = [s for s in sorted(offsets) if offsets[s] > 300 * KiB]
        assert deep, "the journal must reach past 256 KiB into its segment"
        for from_seq in (deep[0], deep[len(deep) // 2], next_seq - 1):
            records, end, _ = FrameReader(journal).read(from_seq, 64 * KiB)
            assert records[0][0] == from_seq and bytes(records[0][2]) == by_seq[from_seq]
            assert [bytes(f) for _, _, f in records] == [by_seq[s] for s in range(from_seq, end)]
    finally:
        journal.close()


def test_frame_longer_than_the_read_size_is_returned_whole():
    frames = [record.encode(record.TYPE_TRANSACTION, 0, i, record.ZERO_HASH, 1, b"\0" * 8, 1,
                            {"pad": "y" * (50 + 900 * i)})[0] for i in range(4)]
    image = b"".join(frames) + b"\0" * 64
    got = list(iter_frames(lambda off, n: image[off:off + n], 0, len(image), 100))
    assert [f for _, f in got] == frames
    assert [off for off, _ in got] == [sum(len(f) for f in frames[:i]) for i in range(4)]


def test_a_header_claiming_past_the_segment_end_is_named():
    frame = record.encode(record.TYPE_TRANSACTION, 0, 1, record.ZERO_HASH, 1, b"\0" * 8, 1, {"a": 1})[0]
    image = b"\0" * 40 + frame
    try:
        list(iter_frames(lambda off, n: image[off:off + n], 40, len(image) - 3, 16))
    except record.FrameError as exc:
        assert exc.offset == 40 and exc.reason == "short"
        assert "runs past the segment end" in str(exc)
    else:
        raise AssertionError("a frame past the segment end was accepted")
