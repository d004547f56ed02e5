"""Two backend processes storing overlapping batches at once (as two workers
on one shared subscription do after a redelivery): every record stored once,
each counted "new" by exactly one of them, no crash, no duplicate rows."""

import multiprocessing

import pytest

from daozhang.backend.store import open_store
from dztest.store_records import make_chain, store_batches_worker

pytestmark = [pytest.mark.timeout(120)]

KEY = b"\x01" * 32


def run_workers(url, jobs):
    """jobs: [(records, batch_size, reverse)]; all start together."""
    ctx = multiprocessing.get_context("spawn")  # no inherited DB connections
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=store_batches_worker,
                         args=(url, "dev-a", records, size, start, out, reverse))
             for records, size, reverse in jobs]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    errors = [r for r in results if r[0] != "ok"]
    assert not errors, errors
    return results


def test_two_processes_overlapping_batches(store_url):
    with open_store(store_url) as store:
        store.add_device("dev-a", KEY)
    chain = make_chain(1200)
    # A stores 0..799 forwards, B 400..1199 backwards, in different batch
    # sizes so their transactions interleave on the shared 400..799.
    results = run_workers(store_url, [(chain[:800], 40, False), (chain[400:], 25, True)])

    new = results[0][1] + results[1][1]
    assert sorted(new) == list(range(1200))          # each seq "new" exactly once
    duplicates = results[0][2] + results[1][2]
    assert sorted(duplicates) == list(range(400, 800))
    assert results[0][3] == results[1][3] == []
    with open_store(store_url) as store:
        stored = store.records("dev-a")
        assert [r["seq"] for r in stored] == list(range(1200))
        assert [r["hash"] for r in stored] == [r["hash"] for r in chain]
        assert store.head("dev-a") == (1199, chain[-1]["hash"])
        assert store.stats()["findings"] == 0


def test_two_processes_racing_different_records_for_the_same_seqs(store_url):
    with open_store(store_url) as store:
        store.add_device("dev-a", KEY)
    honest, forged = make_chain(300), make_chain(300, salt=b"forged")
    results = run_workers(store_url, [(honest, 30, False), (forged, 30, False)])

    new = results[0][1] + results[1][1]
    forks = results[0][3] + results[1][3]
    assert sorted(new) == list(range(300))
    assert sorted(forks) == list(range(300))         # the loser of each seq saw a fork
    with open_store(store_url) as store:
        stored = {r["seq"]: r["hash"] for r in store.records("dev-a")}
        assert len(stored) == 300
        for seq in range(300):
            assert stored[seq] in (honest[seq]["hash"], forged[seq]["hash"])
        assert len(store.findings("dev-a", kind="fork")) == 300
