"""The tolerant journal reader behind reconcile (host_tools/reconcile/journal.py).

Fuzz invariant: for a journal with arbitrary bytes changed, the reader
returns transactions and exclusions and never raises; an unchanged journal
reads exactly as the plain decoder (verify/reader.py iter_records) reads it."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daozhang.host_tools.verify.reader import iter_records
from daozhang.host_tools.reconcile.journal import journal_transactions, read_records
from daozhang.host_tools.verify.report import Finding
from dztest import reconcile as sc


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    journal, _pub, _seqs = sc.write_journal(str(tmp_path_factory.mktemp("rj")))
    with open(journal, "rb") as f:
        return journal, f.read()


def test_intact_journal_reads_as_the_plain_decoder(image):
    path, _data = image
    plain = [(r.seq, r.type, r.payload) for r in iter_records(path)]
    assert read_records(path) == plain
    txns, excluded = journal_transactions(path)
    assert excluded == []
    assert [t["pos_txn_id"] for t in txns] == [t["pos_txn_id"] for t in sc.scenario_transactions()]


def test_findings_exclude_the_record_and_its_commit(image):
    path, _data = image
    recs = read_records(path)
    seq_s03 = next(s for s, t, p in recs if t == 1 and p["pos_txn_id"] == "S03")
    seq_s05 = next(s for s, t, p in recs if t == 1 and p["pos_txn_id"] == "S05")
    ck_s03 = next(s for s, t, p in recs if t == 8 and s > seq_s03)     # after S03 (and any padding)
    findings = [Finding("BadSignature", ck_s03, 0, "x"),           # S03's checkpoint
                Finding("ChainBroken", seq_s05 + 1, 0, "x"),      # S05 or its checkpoint
                Finding("UncommittedTail", seq_s05, 0, "x")]      # informational: ignored
    txns, excluded = journal_transactions(path, findings)
    assert [(x["pos_txn_id"], x["why"]) for x in excluded] == [("S03", "finding"),
                                                               ("S05", "finding")]
    assert "checkpoint (seq %d) has finding BadSignature" % ck_s03 in excluded[0]["reason"]
    assert len(txns) == len(sc.scenario_transactions()) - 2


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 20000), st.binary(min_size=1, max_size=64)),
                      min_size=1, max_size=6))
def test_fuzz_damaged_journal_never_raises(image, edits):
    _path, data = image
    damaged = bytearray(data)
    for pos, chunk in edits:
        damaged[pos:pos + len(chunk)] = chunk
    records = read_records(bytes(damaged))
    seqs = [r[0] for r in records]
    assert seqs == sorted(set(seqs))
    txns, excluded = journal_transactions(bytes(damaged))
    assert len(txns) + len(excluded) == sum(1 for r in records if r[1] == 1)
