"""Property: every commit ends on a sector boundary (SPEC 3.9 rule 0).

Invariant, for any sector size, any mix of record sizes and counts, signed
or in a signer outage, across segment switches: the ring's write position
after each commit is a multiple of the sector size, the padding record is
the only thing added, every record reads back in sequence, and the
independent verifier finds the journal intact.
"""

from hypothesis import given, settings, strategies as st

from daozhang.agent.core.journal import record, ring_storage
from daozhang.agent.core.journal.ring import Clock
from daozhang.host_tools.verify.journal import verify_journal
from dztest.journal_kit import fresh_image, make_signer, read_records

SIGNER = make_signer()


@settings(max_examples=60, deadline=None)
@given(sector=st.sampled_from([512, 1024, 2048, 4096]),
       commits=st.lists(st.tuples(st.lists(st.integers(0, 2500), min_size=0, max_size=4), st.booleans()),
                        min_size=1, max_size=12))
def test_every_commit_ends_on_a_sector(sector, commits):
    storage = ring_storage.MemoryStorage(fresh_image(segment_size=16384, segment_count=8, sector_size=sector))
    ring = ring_storage.open_ring(storage)
    clock = Clock(1_764_115_200_000, b"\x03" * 8, 0)
    expected = []
    for sizes, outage in commits:
        entries = [(record.TYPE_TRANSACTION, {"memo": "x" * n}) for n in sizes]
        results = ring_storage.commit(storage, ring, entries, clock, None if outage else SIGNER,
                                ring.next_seq + len(entries), ring.next_seq + len(entries))
        assert ring.write_pos % sector == 0
        expected += [r.seq for r in results]
        clock.mono_ms += 1
    recs = read_records(storage, ring)
    assert [r.seq for r in recs] == list(range(recs[0].seq, ring.next_seq))
    added = set(r.type for r in recs) - {record.TYPE_TRANSACTION, record.TYPE_CHECKPOINT}
    assert added <= {record.TYPE_PADDING}
    assert set(expected) <= set(r.seq for r in recs)
    report = verify_journal(bytes(storage.data), [SIGNER.public_bytes], all_signatures=True)
    assert set(report.kinds()) <= {"UnrecoveredOutage"}, report.findings
