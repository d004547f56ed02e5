"""The intake's two commit paths (agent/intake_dispatch.py): a lone sale
committed on the selector thread, and the hand-off to the committer thread.

Real parts: a real Unix socket, the real IntakeService and a real journal
on disk whose storage counts writes and fdatasyncs, so a test can tell that
every receipt left only after its commit was durable.  No sleeps: clients
wait for their answers, threads are joined, a gate is an Event.
"""

import os
import random
import tempfile
import threading

import pytest

from daozhang.agent.core.journal import record
from daozhang.agent.intake import IntakeServer
from daozhang.agent.intake_service import IntakeService
from daozhang.agent.journal_file import JournalFile, create_journal
from daozhang.agent.receipt import verify_code
from daozhang.agent.storage import FileStorage
from daozhang.client import Client
from daozhang.signing import generate_keypair, load_signer
from dztest.agent_daemon import sale

pytestmark = pytest.mark.timeout(120)


class CountingStorage(FileStorage):
    """FileStorage that tells whether every write so far has been fdatasynced."""

    def __init__(self, path):
        super().__init__(path)
        self.written = 0
        self.synced = 0

    def pwrite(self, offset, data):
        super().pwrite(offset, data)
        self.written += 1

    def sync(self):
        upto = self.written
        super().sync()
        self.synced = upto

    def all_durable(self):
        return self.synced == self.written


@pytest.fixture
def parts(tmp_path):
    generate_keypair(str(tmp_path / "dev"))
    path = str(tmp_path / "j.dzj")
    create_journal(path, "pos-d", size=2 << 20, segment_size=64 << 10)
    storage = CountingStorage(path)
    journal = JournalFile.open(path, load_signer(str(tmp_path / "dev.key")), storage=storage)
    servers = []

    def serve(direct=True, service=None):
        service = service or IntakeService(journal)
        sock = os.path.join(tempfile.mkdtemp(prefix="dzd"), "intake.sock")
        srv = IntakeServer(service, sock, frame_timeout=30, idle_timeout=60, direct=direct)
        # A slow CI disk must not switch the path under the test's feet.
        srv.dispatcher.direct_max_commit_s = 3600
        srv.start()
        servers.append(srv)
        return srv, service

    yield journal, storage, serve, str(tmp_path / "dev.pub")
    for srv in servers:
        srv.stop_accepting()
        srv.drain(5)
    journal.close()


def _sales(journal):
    return [(r.seq, r.payload["pos_txn_id"]) for r in journal.records()
            if r.type == record.TYPE_TRANSACTION]


def _submit_checking_durable(conn, storage, txn):
    out = conn.submit(txn)
    # The client holds the receipt: the commit behind it is already on disk
    # (no write since without its fdatasync; nothing else writes here).
    assert storage.all_durable(), "receipt for %s before fdatasync" % txn["pos_txn_id"]
    return out


@pytest.mark.parametrize("direct", [True, False], ids=["selector-thread", "committer"])
def test_each_path_gives_durable_verifiable_receipts_in_order(parts, direct):
    journal, storage, serve, pub = parts
    srv, _ = serve(direct=direct)
    with Client(srv.path, timeout=30) as conn:
        got = [_submit_checking_durable(conn, storage, sale("D-%02d" % i)) for i in range(12)]
        again = conn.submit(sale("D-03"))                  # a resubmission: the same receipt
    d = srv.dispatcher
    assert (d.direct_commits, d.handoff_commits) == ((13, 0) if direct else (0, 13))
    seqs = [g["seq"] for g in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == 12
    assert again["duplicate"] and again["receipt_code"] == got[3]["receipt_code"]
    for g in got:
        assert verify_code(g["receipt_code"], pub)["seq"] == g["seq"]
    assert _sales(journal) == [(g["seq"], "D-%02d" % i) for i, g in enumerate(got)]


def test_the_committer_is_idle_once_its_answer_is_out(parts):
    """A lone POS after a hand-off: its next sale may already go direct.
    The policy is forced to alternate; the idle rules still apply, and hold
    for every other sale because the committer marks itself idle in the same
    lock hold that sends its answer."""
    journal, storage, serve, pub = parts
    srv, _ = serve()
    flip = iter([True, False] * 10)
    srv.dispatcher._direct_locked = lambda n, d=srv.dispatcher: (
        next(flip) and not d._queue and not d._committing)
    with Client(srv.path, timeout=30) as conn:
        got = [_submit_checking_durable(conn, storage, sale("A-%02d" % i)) for i in range(20)]
    assert (srv.dispatcher.direct_commits, srv.dispatcher.handoff_commits) == (10, 10)
    assert _sales(journal) == [(g["seq"], "A-%02d" % i) for i, g in enumerate(got)]


def test_both_paths_at_once_lose_duplicate_and_reorder_nothing(parts):
    """Eight POS at once, each pair sharing some pos_txn_ids (one commits,
    the other gets the same receipt back); the path is picked at random per
    pass, direct batches of any size included."""
    journal, storage, serve, pub = parts
    srv, svc = serve()
    rng = random.Random(11)
    d = srv.dispatcher
    d._direct_locked = lambda n: rng.random() < 0.5 and not d._queue and not d._committing
    answers = {}
    failures = []

    def pos(k):
        mine = []
        try:
            with Client(srv.path, timeout=30) as conn:
                for i in range(25):
                    pid = "S-%d-%02d" % (k // 2, i) if i % 3 == 0 else "P-%d-%02d" % (k, i)
                    mine.append((pid, conn.submit(sale(pid))))
        except Exception as exc:       # reported below, in the test's thread
            failures.append(exc)
        answers[k] = mine

    threads = [threading.Thread(target=pos, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    by_pid = {}
    for k, mine in answers.items():
        fresh = [a["seq"] for _, a in mine if not a["duplicate"]]
        assert fresh == sorted(fresh), "one POS's sales committed out of order"
        for pid, a in mine:
            by_pid.setdefault(pid, []).append(a)
    for pid, seen in by_pid.items():
        assert len({a["receipt_code"] for a in seen}) == 1, pid
        assert sum(not a["duplicate"] for a in seen) == 1, pid
    journaled = _sales(journal)
    assert sorted(p for _, p in journaled) == sorted(by_pid)          # each once, none lost
    assert all(by_pid[p][0]["seq"] == s for s, p in journaled)
    for seen in by_pid.values():
        assert verify_code(seen[0]["receipt_code"], pub)["seq"] == seen[0]["seq"]
    assert d.direct_commits > 0 and d.handoff_commits > 0
    assert storage.all_durable()


@pytest.mark.parametrize("direct", [True, False], ids=["selector-thread", "committer"])
def test_the_receipt_leaves_before_the_watchdog_and_index_take_the_sale(parts, direct):
    """on_commit (the watchdog's queue), the index and the log come after the
    answer: the POS has its receipt while on_commit is held, and the sale
    stays pending (cursors held back, a resubmission would wait) till then."""
    journal, storage, serve, pub = parts
    gate, entered = threading.Event(), threading.Event()

    def held(seq, payload, data):
        entered.set()
        assert gate.wait(30)

    svc = IntakeService(journal, on_commit=held)
    srv, _ = serve(direct=direct, service=svc)
    with Client(srv.path, timeout=30) as conn:
        first = _submit_checking_durable(conn, storage, sale("G-1"))
        assert entered.wait(30) and not gate.is_set()
        assert svc.listeners_floor() < first["seq"]     # held back while on_commit runs
        gate.set()
        conn.submit(sale("G-2"))        # G-1's finish ran before G-2 was taken
        assert conn.submit(sale("G-1"))["duplicate"]
    assert svc.listeners_floor() >= first["seq"]


def test_a_slow_disk_sends_every_sale_to_the_committer(parts):
    """With commits counted slow (the threshold at 0), the selector never
    commits itself: a stalled fsync must not also stall pings and deadlines."""
    journal, storage, serve, pub = parts
    srv, _ = serve()
    srv.dispatcher.direct_max_commit_s = 0
    with Client(srv.path, timeout=30) as conn:
        got = [_submit_checking_durable(conn, storage, sale("W-%d" % i)) for i in range(5)]
        assert conn.ping()["pong"] is True
    assert (srv.dispatcher.direct_commits, srv.dispatcher.handoff_commits) == (0, 5)
    assert _sales(journal) == [(g["seq"], "W-%d" % i) for i, g in enumerate(got)]
