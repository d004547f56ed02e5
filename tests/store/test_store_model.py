"""Property: store_batch behaves like a tiny in-memory model, on both databases.

Invariant: for any sequence of batches mixing two chains (honest, forged)
over seqs 0..11, with duplicates, gaps and reorderings,
- each record is classified new / duplicate / forked exactly as a dict
  "first stored wins" model says;
- the stored record for each seq is the first one offered;
- contiguous_seq is the longest run from 0 in which each record links to
  the previous stored one; fork and chain-break findings match the model.
"""

import contextlib
import itertools
import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from daozhang.backend.store import open_store
from dztest.pg import fresh_schema
from dztest.store_records import make_chain

pytestmark = pytest.mark.timeout(120)

SEQS = 12
CHAINS = (make_chain(SEQS, salt=b"honest"), make_chain(SEQS, salt=b"forged"))

batch = st.lists(st.tuples(st.integers(0, SEQS - 1), st.sampled_from([0, 0, 0, 1])),
                 min_size=1, max_size=8)


def model_contiguous(stored):
    seq = -1
    while seq + 1 in stored and (seq < 0 or stored[seq + 1] == stored[seq]):
        seq += 1
    return seq


@contextlib.contextmanager
def database(kind, directory):
    if kind == "sqlite":
        yield os.path.join(directory, "model.db")
    else:
        with fresh_schema() as url:
            yield url


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_store_batch_matches_the_model(kind, tmp_path):
    with database(kind, str(tmp_path)) as url, open_store(url) as store:
        devices = itertools.count()

        @settings(max_examples=60 if kind == "sqlite" else 30, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(st.lists(batch, min_size=1, max_size=6))
        def check(batches):
            device = "d%d" % next(devices)  # a fresh device per example
            store.add_device(device, b"\x01" * 32)
            stored, forks, breaks = {}, set(), set()
            for group in batches:
                expected = ([], [], [])
                for seq, variant in group:
                    if seq not in stored:
                        stored[seq] = variant
                        expected[0].append(seq)
                    elif stored[seq] == variant:
                        expected[1].append(seq)
                    else:
                        expected[2].append(seq)
                        forks.add((seq, variant))
                result = store.store_batch(device, [CHAINS[v][s] for s, v in group])
                assert (result.new, result.duplicate, result.forked) == expected
                contiguous = model_contiguous(stored)
                if contiguous + 1 in stored and contiguous >= 0:
                    breaks.add(contiguous + 1)
                assert result.contiguous_seq == (None if contiguous < 0 else contiguous)
                if contiguous >= 0:
                    assert result.head_hash == CHAINS[stored[contiguous]][contiguous]["hash"]
            rows = store.records(device)
            assert {r["seq"]: r["hash"] for r in rows} == \
                {s: CHAINS[v][s]["hash"] for s, v in stored.items()}
            assert len(store.findings(device, kind="fork")) == len(forks)
            assert {f["seq"] for f in store.findings(device, kind="chain_break")} == breaks

        check()
