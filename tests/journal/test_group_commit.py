"""Group commit under concurrent appenders.

Invariants: every append returns only once its commit is durable, or raises
its commit's error; results have unique seqs, in the order the appends
queued; appends queued behind a running flush share commits, no commit
holds more than the batch limit (a larger ticket goes alone); an I/O error
fails every waiting append and reports none committed; a bad entry fails
only its own append; each waiting appender is woken once (by the commit
that completed it, or to lead the next flush), never by others' commits.

The tests hold chosen fdatasyncs shut to line appenders up in a known order;
they wait on events, never on time.
"""

import errno
import threading

import pytest

from daozhang.agent.core.errors import LocalError, StorageError
from daozhang.agent.core.journal import record, ring_storage
from daozhang.agent.journal_file import JournalFile, create_journal
from daozhang.agent.storage import FileStorage
from daozhang.host_tools.verify.journal import verify_journal
from dztest.faulty_storage import FaultyStorage
from dztest.journal_kit import fresh_image, make_signer, read_records

SIGNER = make_signer()
WAIT = 60          # seconds: only a bug (a lost wakeup) ever reaches it
pytestmark = pytest.mark.timeout(180)


class GatedStorage(FaultyStorage):
    """In-memory storage whose chosen fdatasyncs block until released."""

    def __init__(self, image):
        FaultyStorage.__init__(self, image)
        self._cv = threading.Condition()
        self._gates = {}
        self.held = set()
        self.raise_at = {}          # sync number -> exception to raise instead of syncing

    def hold(self, n):
        self._gates[n] = threading.Event()

    def release(self, n):
        self._gates[n].set()

    def wait_held(self, n):
        with self._cv:
            assert self._cv.wait_for(lambda: n in self.held, WAIT), "sync %d never reached" % n

    def sync(self):
        n = self.syncs + 1
        gate = self._gates.get(n)
        if gate is not None:
            with self._cv:
                self.held.add(n)
                self._cv.notify_all()
            assert gate.wait(WAIT), "sync %d never released" % n
        if n in self.raise_at:
            self.syncs += 1
            raise self.raise_at[n]
        FaultyStorage.sync(self)


class CountingCondition(threading.Condition):
    """A waiter's condition that counts how often its thread was woken."""

    def __init__(self, lock):
        threading.Condition.__init__(self, lock)
        self.wakeups = 0

    def wait(self, timeout=None):
        woke = threading.Condition.wait(self, WAIT if timeout is None else timeout)
        assert woke, "an appender was never woken"
        self.wakeups += 1
        return woke


class WatchedJournal(JournalFile):
    """Counts appenders that went to wait (queued behind a flush) and their wakeups."""

    def __init__(self, *args):
        JournalFile.__init__(self, *args)
        self.watch = threading.Condition()
        self.waiting = 0
        self.conditions = []
        self.idle_waits = 0
        journal = self

        class Idle(threading.Condition):
            def wait(self, timeout=None):
                with journal.watch:
                    journal.idle_waits += 1
                    journal.watch.notify_all()
                return threading.Condition.wait(self, timeout)

        self._idle = Idle(self._lock)

    def _waiter(self):
        if not hasattr(self._local, "cv"):
            self._local.cv = CountingCondition(self._lock)
            self.conditions.append(self._local.cv)
        cv = JournalFile._waiter(self)
        with self.watch:
            self.waiting += 1
            self.watch.notify_all()
        return cv

    def wait_for(self, predicate):
        with self.watch:
            assert self.watch.wait_for(predicate, WAIT), "appenders never lined up"


class Appender(threading.Thread):
    def __init__(self, journal, entries, **cursors):
        threading.Thread.__init__(self, daemon=True)
        self.journal, self.entries, self.cursors = journal, entries, cursors
        self.result = self.error = None

    def run(self):
        try:
            self.result = self.journal.append_many(self.entries, **self.cursors)
        except Exception as exc:
            self.error = exc


def sale(tag, i=0):
    return (record.TYPE_TRANSACTION, {"tag": tag, "i": i})


def open_gated(segment_size=65536, segment_count=8):
    storage = GatedStorage(fresh_image(segment_size=segment_size, segment_count=segment_count))
    return storage, WatchedJournal.open("mem", SIGNER, storage=storage)


def hold_a_leader(storage, journal):
    """Start an append that blocks inside its fdatasync; return it and that sync's number."""
    n = storage.syncs + 1
    storage.hold(n)
    leader = Appender(journal, [sale("leader")])
    leader.start()
    storage.wait_held(n)
    return leader, n


def queue_in_order(journal, appenders):
    """Start appenders one by one, each queued before the next starts."""
    for appender in appenders:
        before = journal.waiting
        appender.start()
        journal.wait_for(lambda: journal.waiting == before + 1)


def join(threads):
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive(), "an appender is stuck"


def durable_payloads(storage):
    """{seq: payload} of the records a reopen finds on the durable image."""
    after = FaultyStorage(storage.image())
    ring = ring_storage.open_ring(after)
    return {rec.seq: rec.payload for rec in read_records(after, ring)}


def test_appends_queued_behind_a_flush_share_one_commit_in_fifo_order():
    storage, journal = open_gated()
    calls = []
    journal.commit_listeners.append(calls.append)
    leader, n = hold_a_leader(storage, journal)
    followers = [Appender(journal, [sale("f", i)]) for i in range(10)]
    queue_in_order(journal, followers)
    commits = journal.commits
    storage.release(n)
    join([leader] + followers)
    assert [a.error for a in [leader] + followers] == [None] * 11
    seqs = [a.result[0].seq for a in [leader] + followers]
    assert seqs == sorted(seqs) and len(set(seqs)) == 11
    assert seqs[1:] == list(range(seqs[1], seqs[1] + 10))     # one commit, in queue order
    assert journal.commits - commits == 2                      # the leader's, then the shared one
    # once per commit, with the sequence the next commit starts at (records, padding, checkpoint)
    assert calls == [seqs[1], journal.ring.next_seq]
    assert [cv.wakeups for cv in journal.conditions] == [1] * 10
    found = durable_payloads(storage)
    assert [found[s] for s in seqs[1:]] == [{"tag": "f", "i": i} for i in range(10)]
    report = verify_journal(storage.image(), [SIGNER.public_bytes], all_signatures=True)
    assert report.ok, report.findings


def test_the_batch_limit_splits_the_queue_and_the_lead_is_passed_on():
    storage, journal = open_gated()
    journal._batch_limit = 3
    leader, n = hold_a_leader(storage, journal)
    sizes = [1, 1, 5, 1, 1, 1, 1]          # the 5-record append exceeds the limit: alone
    followers = [Appender(journal, [sale("f%d" % i, k) for k in range(size)]) for i, size in enumerate(sizes)]
    queue_in_order(journal, followers)
    commits = journal.commits
    storage.release(n)
    join([leader] + followers)
    assert [a.error for a in followers] == [None] * len(sizes)
    assert journal.commits - commits == 1 + 4                  # [1, 1] [5] [1, 1, 1] [1]
    seqs = [r.seq for a in followers for r in a.result]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [cv.wakeups for cv in journal.conditions] == [1] * len(sizes)
    found = durable_payloads(storage)
    for a in followers:
        assert [found[r.seq] for r in a.result] == [p for _, p in a.entries]


def test_an_io_error_fails_every_waiting_append_and_reports_none_committed():
    storage, journal = open_gated()
    leader, n = hold_a_leader(storage, journal)
    batch = [Appender(journal, [sale("batch", i)]) for i in range(5)]
    queue_in_order(journal, batch)
    storage.hold(n + 1)
    storage.fail_sync = (n + 1, errno.EIO)
    storage.release(n)
    storage.wait_held(n + 1)
    # Queued while the failing flush runs: they must fail too, not hang or commit.
    late = [Appender(journal, [sale("late", i)]) for i in range(3)]
    queue_in_order(journal, late)
    storage.release(n + 1)
    join([leader] + batch + late)
    assert leader.error is None
    for a in batch + late:
        assert isinstance(a.error, StorageError) and a.result is None
    assert [cv.wakeups for cv in journal.conditions] == [1] * 8
    with pytest.raises(StorageError, match="reopen"):
        journal.append(*sale("after"))
    found = durable_payloads(storage)
    # the leader's record, its padding and checkpoint, nothing after
    assert max(found) == leader.result[0].seq + 2 and found[max(found)].get("sig")
    assert not [p for p in found.values() if p.get("tag") in ("batch", "late")]


def test_a_bad_entry_in_a_shared_batch_fails_only_its_own_append():
    storage, journal = open_gated()
    leader, n = hold_a_leader(storage, journal)
    good = [Appender(journal, [sale("good", i)]) for i in range(3)]
    bad = Appender(journal, [sale("bad"), (record.TYPE_TRANSACTION, {"amount": 1.5})])
    queue_in_order(journal, [good[0], bad, good[1], good[2]])
    storage.release(n)
    join([leader, bad] + good)
    assert isinstance(bad.error, LocalError) and "float" in str(bad.error)
    assert [a.error for a in good] == [None] * 3
    seqs = [a.result[0].seq for a in good]
    assert seqs == sorted(seqs)
    found = durable_payloads(storage)
    assert [found[s] for s in seqs] == [{"tag": "good", "i": i} for i in range(3)]
    assert not [p for p in found.values() if p.get("tag") == "bad"]
    journal.append(*sale("still usable"))


def test_an_unexpected_error_in_a_flush_fails_the_waiters_and_poisons_the_journal():
    storage, journal = open_gated()
    leader, n = hold_a_leader(storage, journal)
    batch = [Appender(journal, [sale("batch", i)]) for i in range(4)]
    queue_in_order(journal, batch)
    storage.raise_at[n + 1] = RuntimeError("controller reset")
    storage.release(n)
    join([leader] + batch)
    # batch[0] led the failed flush and sees the error itself; the rest are failed, not stuck.
    assert isinstance(batch[0].error, RuntimeError)
    for a in batch[1:]:
        assert isinstance(a.error, StorageError) and "controller reset" in str(a.error)
    with pytest.raises(StorageError, match="reopen"):
        journal.append(*sale("after"))


def test_a_cursor_commit_waits_its_turn_and_carries_no_one_else():
    storage, journal = open_gated()
    leader, n = hold_a_leader(storage, journal)
    before = [Appender(journal, [sale("before")])]
    cursor = Appender(journal, [], acked=1, released=1)
    after = [Appender(journal, [sale("after", i)]) for i in range(2)]
    queue_in_order(journal, before + [cursor] + after)
    commits = journal.commits
    storage.release(n)
    join([leader, cursor] + before + after)
    assert [a.error for a in before + [cursor] + after] == [None] * 4
    assert journal.commits - commits == 1 + 3                  # [before] [cursor] [after, after]
    assert before[0].result[0].seq < after[0].result[0].seq
    assert (journal.ring.acked, journal.ring.released) == (1, 1)
    assert [cv.wakeups for cv in journal.conditions] == [1] * 4


def test_close_lets_queued_appends_commit_and_refuses_new_ones():
    storage, journal = open_gated()
    leader, n = hold_a_leader(storage, journal)
    queued = [Appender(journal, [sale("queued", i)]) for i in range(3)]
    queue_in_order(journal, queued)
    closer = threading.Thread(target=journal.close, daemon=True)
    closer.start()
    journal.wait_for(lambda: journal.idle_waits == 1)
    with pytest.raises(LocalError, match="closed"):
        journal.append(*sale("too late"))
    storage.release(n)
    join([leader, closer] + queued)
    assert [a.error for a in queued] == [None] * 3
    assert journal.storage is None
    found = durable_payloads(storage)
    assert [found[a.result[0].seq] for a in queued] == [{"tag": "queued", "i": i} for i in range(3)]


def test_free_running_writers_on_a_real_file_get_unique_ordered_verified_records(tmp_path):
    path = str(tmp_path / "group.dzj")
    create_journal(path, "pos-group", size=4 << 20, segment_size=256 << 10)
    threads, per_thread = 8, 40
    journal = JournalFile.open(path, SIGNER, storage=FileStorage(path))
    start = threading.Barrier(threads)
    results = [[] for _ in range(threads)]
    errors = []

    def writer(w):
        start.wait(WAIT)
        try:
            for i in range(per_thread):
                results[w].append(journal.append(*sale("w%d" % w, i)).seq)
        except Exception as exc:
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(threads)]
    for t in workers:
        t.start()
    join(workers)
    commits = journal.commits
    journal.close()
    assert errors == []
    seqs = [s for r in results for s in r]
    assert len(set(seqs)) == threads * per_thread
    assert all(r == sorted(r) for r in results)
    assert commits <= threads * per_thread + 1
    with open(path, "rb") as f:
        image = f.read()
    report = verify_journal(image, [SIGNER.public_bytes], all_signatures=True)
    assert report.ok, report.findings
    ring = ring_storage.open_ring(FaultyStorage(image))
    found = {rec.seq: rec.payload for rec in read_records(FaultyStorage(image), ring)}
    for w, r in enumerate(results):
        assert [found[s] for s in r] == [{"tag": "w%d" % w, "i": i} for i in range(per_thread)]
