"""The ring's rules (SPEC 3.6, 3.7, 3.10): full means refused, never dropped."""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daozhang.agent.core.errors import JournalFull, LocalError
from daozhang.agent.core.journal import checkpoint, record, ring_storage
from daozhang.agent.core.journal.ring import Clock, SignerUnavailable
from dztest.faulty_storage import FaultyStorage
from dztest.journal_kit import fresh_image, make_signer, read_all, read_records

SIGNER = make_signer()


def new_ring(segment_size=8192, segment_count=3):
    storage = ring_storage.MemoryStorage(fresh_image(segment_size, segment_count))
    return storage, ring_storage.open_ring(storage)


def sale(n, pad=200):
    return (record.TYPE_TRANSACTION, {"n": n, "memo": "x" * pad})


def clock(k=0):
    return Clock(1_764_115_200_000 + k, b"\x05" * 8, k)


def fill(storage, ring, limit=10_000):
    n = 0
    with pytest.raises(JournalFull):
        while n < limit:
            ring_storage.commit(storage, ring, [sale(n)], clock(n), SIGNER)
            n += 1
    return n


def test_full_journal_refuses_and_overwrites_nothing():
    storage, ring = new_ring()
    fill(storage, ring)
    before = bytes(storage.data)
    state = (ring.next_seq, ring.head_hash, ring.write_pos)
    with pytest.raises(JournalFull):
        ring_storage.commit(storage, ring, [sale(-1)], clock(), SIGNER)
    assert bytes(storage.data) == before
    assert (ring.next_seq, ring.head_hash, ring.write_pos) == state


def test_releasing_lets_the_ring_wrap_and_keeps_unreleased_records():
    storage, ring = new_ring()
    fill(storage, ring)
    keep_from = ring.next_seq // 2
    # Release the first half only: the oldest segment(s) become reusable.
    ring_storage.commit(storage, ring, [], clock(), SIGNER, acked=ring.next_seq, released=keep_from)
    written = []
    with pytest.raises(JournalFull):
        for n in range(10_000):
            written.extend(r.seq for r in ring_storage.commit(storage, ring, [sale(n)], clock(n), SIGNER))
    assert written, "the ring did not wrap"
    kept = dict(read_all(storage, ring))
    assert all(seq in kept for seq in range(keep_from, ring.next_seq))


def test_cursors_cannot_move_back_or_past_the_head():
    storage, ring = new_ring()
    ring_storage.commit(storage, ring, [sale(0)], clock(), SIGNER, acked=1, released=1)
    for acked, released in ((0, 0), (5, 1), (1, 2), (99, 99)):
        with pytest.raises(LocalError):
            ring.prepare([], clock(), SIGNER, acked, released)


class FlakySigner:
    def __init__(self, inner):
        self.inner, self.alg, self.kid, self.down = inner, inner.alg, inner.kid, False

    def sign(self, message):
        if self.down:
            raise SignerUnavailable("key gone")
        return self.inner.sign(message)


def test_signer_outage_flags_records_and_recovery_signs():
    storage, ring = new_ring(segment_size=65536)
    signer = FlakySigner(SIGNER)
    ring_storage.commit(storage, ring, [sale(0)], clock(), signer)
    signer.down = True
    ring_storage.commit(storage, ring, [sale(1)], clock(), signer)
    ring_storage.commit(storage, ring, [sale(2)], clock(), signer)
    signer.down = False
    ring_storage.commit(storage, ring, [sale(3)], clock(), signer)
    ring_storage.commit(storage, ring, [sale(4)], clock(), signer)
    recs = read_records(storage, ring)
    states = [(r.payload["state"], r.payload["alg"]) for r in recs if r.type == record.TYPE_CHECKPOINT]
    assert states == [(0, 1), (1, 0), (1, 0), (2, 1), (0, 1)]
    flagged = [r.type for r in recs if r.flags & record.FLAG_OUTAGE and r.type != record.TYPE_PADDING]
    assert flagged == [1, 8, 1, 8]          # two sales and their two checkpoints


def test_checkpoint_signature_and_audit_paths_verify():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    storage, ring = new_ring(segment_size=65536)
    results = ring_storage.commit(storage, ring, [sale(i) for i in range(7)], clock(), SIGNER)
    pub = Ed25519PublicKey.from_public_bytes(SIGNER.public_bytes)
    for r in results:
        msg = checkpoint.message_for(r.checkpoint, r.checkpoint_seq, r.checkpoint_head, r.checkpoint_wall_ms,
                                     r.checkpoint_boot_id, r.checkpoint_mono_ms)
        pub.verify(r.checkpoint["sig"], msg)
        assert checkpoint.root_from_path(r.hash, r.leaf_index, r.leaf_count, r.audit_path) == r.checkpoint["root"]
        assert checkpoint.root_from_path(hashlib.sha256(b"x").digest(), r.leaf_index, r.leaf_count,
                                         r.audit_path) != r.checkpoint["root"]


@given(st.integers(1, 40), st.data())
@settings(max_examples=100)
def test_audit_path_round_trip(n, data):
    hashes = [hashlib.sha256(bytes([i])).digest() for i in range(n)]
    index = data.draw(st.integers(0, n - 1))
    root = checkpoint.batch_root(hashes)
    assert checkpoint.root_from_path(hashes[index], index, n, checkpoint.audit_path(hashes, index)) == root


@given(st.lists(st.integers(1, 4), min_size=1, max_size=30), st.integers(0, 2 ** 32))
@settings(max_examples=60, deadline=None)
def test_reopen_anywhere_gives_the_same_state(batches, seed):
    """State machine property: reopening after any commit rebuilds the exact state."""
    storage, ring = new_ring(segment_size=8192, segment_count=4)
    for k, size in enumerate(batches):
        release = ring.next_seq if (seed >> (k % 32)) & 1 else None
        try:
            ring_storage.commit(storage, ring, [sale(k * 10 + i, pad=100) for i in range(size)], clock(k),
                          SIGNER, release, release)
        except JournalFull:
            continue
        again = ring_storage.open_ring(FaultyStorage(bytes(storage.data)))
        assert (again.next_seq, again.head_hash, again.write_pos, again.first_seqs, again.acked,
                again.released) == (ring.next_seq, ring.head_hash, ring.write_pos, ring.first_seqs,
                                    ring.acked, ring.released)


def test_noted_cursors_ride_on_the_next_commit(tmp_path):
    from daozhang.agent.journal_file import JournalFile, create_journal
    path = str(tmp_path / "j")
    create_journal(path, "note-pos", size=1 << 20, segment_size=65536)
    with JournalFile.open(path, SIGNER) as journal:
        head = journal.append(record.TYPE_TRANSACTION, {"n": 1}).seq + 2
        journal.note_cursors(head, head - 1)
        assert journal.ring.acked == 0          # nothing committed for the note alone
        journal.append(record.TYPE_TRANSACTION, {"n": 2})
        assert (journal.ring.acked, journal.ring.released) == (head, head - 1)
    with JournalFile.open(path, SIGNER) as journal:
        assert (journal.ring.acked, journal.ring.released) == (head, head - 1)


def _spare_by_definition(ring, released):
    """Segments besides the head that are unused or hold only released records."""
    count = 0
    for index, first in enumerate(ring.first_seqs):
        if index == ring.head_index:
            continue
        if first is None or ring._segment_last_seq(index) < released:
            count += 1
    return count


def _unreleased_by_definition(ring, released):
    """The head, and each in-use segment whose last record is not released."""
    return sum(1 for index, first in enumerate(ring.first_seqs)
               if first is not None and (index == ring.head_index
                                         or ring._segment_last_seq(index) >= released))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(0, 100)), min_size=1, max_size=60))
def test_spare_segments_counts_what_a_commit_could_move_into(steps):
    """Invariant: spare_segments() and segments_unreleased() (cached) equal
    their definitions after any history of commits and releases; and with none spare, the ring can still
    take commits only inside the head segment."""
    storage, ring = new_ring(segment_size=8192, segment_count=4)
    n = 0
    for count, release_pct in steps:
        released = ring.released + (ring.next_seq - ring.released) * release_pct // 100
        try:
            ring_storage.commit(storage, ring, [sale(n + k, pad=300) for k in range(count)], clock(n),
                          SIGNER, acked=max(ring.acked, released), released=released)
        except JournalFull:
            pass
        n += count
        for probe in (None, ring.released, ring.next_seq):
            expected = _spare_by_definition(ring, ring.released if probe is None else probe)
            assert ring.spare_segments(probe) == expected
            assert ring.segments_unreleased(probe) == _unreleased_by_definition(
                ring, ring.released if probe is None else probe)
