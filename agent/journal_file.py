"""The journal on a real file: recovery at open, group commit, reading back.

Thin adapter around the sans-IO ring (agent/core/journal/ring.py): it performs the
ring's writes, one fdatasync per commit, and reports a record committed only
after that fdatasync returned.  Concurrent appenders share a commit (leader /
follower group commit): whoever finds no flush running takes everything
queued, writes it with one checkpoint and syncs once.  Then it wakes only
the appenders that commit completed, and passes the lead to the first one
still queued; nobody else is woken (see _lead).

After any write or fsync failure the handle is poisoned: a failed fsync is
never retried and then reported committed (the page cache may already have
dropped the dirty pages); the caller reopens, and recovery reads what is
really on the disk.
"""

import os
import threading
import time

from daozhang import __version__
from daozhang.agent.core.errors import LocalError, StorageError
from daozhang.agent.core.journal import layout
from daozhang.agent.core.journal import record
from daozhang.agent.core.journal import ring_storage
from daozhang.agent.core.journal.ring import Clock
from daozhang.agent.storage import FileStorage, create_file

MAX_BATCH_RECORDS = 256


def create_journal(path, device_id, size=64 * 1024 * 1024, segment_size=None, journal_id=None,
                   created_ms=None, sector_size=layout.DEFAULT_SECTOR_SIZE):
    """Create a preallocated, empty journal file (SPEC 3.1); refuse to overwrite one.

    `sector_size` is the storage's tear unit (the board file's
    journal.sector_size): every commit ends on a multiple of it (SPEC 3.9)."""
    if os.path.exists(path):
        raise LocalError("%s exists: refusing to overwrite a journal" % path)
    seg_size, count = layout.geometry_for(size, segment_size)
    geo = layout.Geometry(seg_size, count, journal_id or os.urandom(layout.JOURNAL_ID_SIZE),
                          device_id, int(time.time() * 1000) if created_ms is None else created_ms,
                          layout.check_sector_size(sector_size))
    create_file(path, geo.encode(), geo.file_size)
    return geo


def read_geometry(path):
    """(segment_size, segment_count) of a journal file, from its superblock."""
    storage = FileStorage(path, readonly=True)
    try:
        geo = layout.decode_superblock(storage.pread(0, layout.SUPERBLOCK_SIZE))
    finally:
        storage.close()
    return geo.segment_size, geo.segment_count


class _Ticket:
    """One append_many call waiting in the commit queue.

    `cv` is the waiting thread's own condition (None until it waits);
    `lead` is set when the previous leader hands it the next flush.
    Tickets with explicit cursors (`solo`) are committed in a batch of
    their own: their cursors apply to the whole commit.
    """
    __slots__ = ("entries", "acked", "released", "solo", "results", "error", "done", "lead", "cv")

    def __init__(self, entries, acked=None, released=None):
        self.entries = entries
        self.acked = acked
        self.released = released
        self.solo = acked is not None or released is not None
        self.results = None
        self.error = None
        self.done = False
        self.lead = False
        self.cv = None


class SystemClock:
    """Wall and monotonic milliseconds plus a random boot id per open."""

    def __init__(self):
        self.boot_id = os.urandom(record.BOOT_ID_SIZE)

    def now(self):
        return Clock(time.time_ns() // 1000000, self.boot_id, time.monotonic_ns() // 1000000)


class JournalFile:
    def __init__(self, storage, geometry, ring, signer, clock):
        self.storage = storage
        self.geo = geometry
        self.ring = ring
        self.signer = signer
        self.clock = clock
        self.device_id = geometry.device_id
        # One lock guards the queue and the committed ring state.  Waiters
        # each sleep on their own condition over it, so a commit wakes only
        # the appenders it completed (plus the next leader); `_idle` is for
        # close(), which waits until no flush runs and nothing is queued.
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._local = threading.local()  # this thread's cached waiting condition
        self._queue = []                 # tickets not yet taken into a flush, FIFO
        self._flushing = False           # a leader exists; False implies _queue is empty
        self._closing = False
        self._failed = None
        self._noted_cursors = None
        self.commits = 0
        self.commit_listeners = []       # called with next_seq after each commit
        # Bounded by a record count sized to the segment: cheaper than
        # encoding twice to measure bytes.  A batch that still does not fit
        # is retried ticket by ticket in _flush.
        self._batch_limit = max(1, min(MAX_BATCH_RECORDS, ring.capacity() // 512))

    @classmethod
    def open(cls, path, signer, clock=None, storage=None, boot=True):
        """Open and recover a journal; commit a boot record saying what was cut."""
        storage = storage or FileStorage(path)
        try:
            ring = ring_storage.open_ring(storage)
        except BaseException:
            storage.close()
            raise
        geo = ring.geo
        journal = cls(storage, geo, ring, signer, clock or SystemClock())
        if boot:
            try:
                journal.append(record.TYPE_BOOT, ring_storage.boot_payload(ring, __version__))
            except BaseException:
                journal.close()     # e.g. JournalFull: release the writer's lock for a reopen without boot
                raise
        return journal

    # -- writing ------------------------------------------------------------

    def append(self, rtype, payload):
        """Append one record; return its Appended once durable and signed."""
        return self.append_many([(rtype, payload)])[0]

    def append_many(self, entries, acked=None, released=None):
        """Append records in one commit (shared with concurrent callers).

        With explicit cursors the commit carries them and no other caller's
        records; see set_cursors().
        """
        ticket = _Ticket(list(entries), acked, released)
        with self._lock:
            self._check_usable()
            self._queue.append(ticket)
            if self._flushing:
                cv = ticket.cv = self._waiter()
                try:
                    while not (ticket.done or ticket.lead):
                        cv.wait()
                except BaseException:   # e.g. KeyboardInterrupt: leave the queue, keep it led
                    self._withdraw(ticket)
                    raise
            else:
                self._flushing = True
            if not ticket.done:
                self._lead(ticket)
        if ticket.error is not None:
            raise ticket.error
        return ticket.results

    def note_cursors(self, acked, released):
        """Remember new cursor values for the next commit to carry.

        A cursor-only commit is itself a record the backend must then ack:
        committing one per ack would ping-pong forever.  Noted cursors ride
        on the next commit instead; call set_cursors() when space must be
        freed now.
        """
        if released > acked:
            raise LocalError("released %d > acked %d" % (released, acked))
        with self._lock:
            current = self._noted_cursors or (self.ring.acked, self.ring.released)
            self._noted_cursors = (max(current[0], acked), max(current[1], released))

    def noted_cursors(self):
        """(acked, released) the next commit will carry."""
        with self._lock:
            return self._noted_cursors or (self.ring.acked, self.ring.released)

    def set_cursors(self, acked=None, released=None, entries=()):
        """Commit new cursor values (with optional records, e.g. a sync ack)."""
        return self.append_many(list(entries), acked=acked, released=released)

    def _waiter(self):
        """This thread's condition over the journal lock, made once per thread.

        A thread waits for at most one ticket at a time, so its condition
        only ever has that one waiter: notify() on it wakes exactly it.
        """
        try:
            return self._local.cv
        except AttributeError:
            cv = self._local.cv = threading.Condition(self._lock)
            return cv

    def _lead(self, own):
        """Flush queued batches until `own` is done, then pass the lead on.

        Called and returns with the lock held, as the only leader.  `own` is
        first in the queue (a new leader finds the queue empty; a handed-on
        one is its head), so the first batch normally completes it; the loop
        is what keeps that true should a batch ever stop short of it.
        """
        while not own.done:
            batch = self._take_batch()
            head = batch[0]
            self._lock.release()
            try:
                self._flush(batch, head.acked, head.released)
            except BaseException as exc:
                self._lock.acquire()
                self._abandon(batch, own, exc)
                raise
            self._lock.acquire()
            for ticket in batch:
                if ticket is not own and ticket.cv is not None:
                    ticket.cv.notify()
            if self._failed is not None:
                self._fail_queued()
        self._pass_lead()

    def _withdraw(self, ticket):
        """Take a ticket whose caller gave up out of the queue (lock held).

        A ticket already in a flush cannot be recalled; one handed the lead
        must pass it on, or every ticket behind it would wait forever.
        """
        if ticket in self._queue:
            self._queue.remove(ticket)
            if ticket.lead:
                self._pass_lead()

    def _pass_lead(self):
        """Wake the next leader (the queue's head), or go idle (lock held)."""
        if self._queue:
            head = self._queue[0]
            head.lead = True
            head.cv.notify()        # queued while a flush ran, so it waits on its cv
        else:
            self._flushing = False
            self._idle.notify_all()

    def _fail_queued(self):
        """The journal is poisoned: fail every ticket still queued (lock held)."""
        error = self._unusable()
        for ticket in self._queue:
            ticket.error = error
            ticket.done = True
            if ticket.cv is not None:   # None: the leader's own ticket, not waiting
                ticket.cv.notify()
        self._queue = []

    def _abandon(self, batch, own, exc):
        """A flush raised past its own error handling (a power cut in tests,
        KeyboardInterrupt, a bug): whether its commit reached the disk is
        unknown, so poison the journal and fail everyone waiting; `own`'s
        caller gets `exc` itself.  Lock held."""
        if self._failed is None:
            self._failed = "%s: %s" % (type(exc).__name__, exc)
        error = self._unusable()
        for ticket in batch:
            if not ticket.done and ticket is not own:
                ticket.error = error
                ticket.done = True
            if ticket is not own and ticket.cv is not None:
                ticket.cv.notify()
        self._fail_queued()
        self._pass_lead()

    def _unusable(self):
        return StorageError("journal unusable after an earlier I/O failure (%s): reopen it" % self._failed)

    def _check_usable(self):
        if self._failed is not None:
            raise self._unusable()
        if self.storage is None or self._closing:
            raise LocalError("journal is closed")

    def _take_batch(self):
        """Take the head of the queue and what may share its commit (lock held)."""
        queue = self._queue
        if len(queue) == 1:             # a lone writer: the usual case
            self._queue = []
            return queue
        if queue[0].solo:
            return [queue.pop(0)]
        limit = self._batch_limit
        used = len(queue[0].entries)
        n = 1
        while n < len(queue):
            ticket = queue[n]
            if ticket.solo or used + len(ticket.entries) > limit:
                break
            used += len(ticket.entries)
            n += 1
        batch = queue[:n]
        del queue[:n]
        return batch

    def _flush(self, tickets, acked=None, released=None):
        entries = tickets[0].entries if len(tickets) == 1 else [e for t in tickets for e in t.entries]
        try:
            if self._failed is not None:
                raise self._unusable()
            noted = self._noted_cursors
            if noted is not None:
                # Noted cursors ride on this commit; explicit ones may go further.
                acked = max(noted[0], self.ring.acked if acked is None else acked)
                released = max(noted[1], self.ring.released if released is None else released)
            commit = self.ring.prepare(entries, self.clock.now(), self.signer, acked, released)
        except Exception as exc:
            if len(tickets) > 1 and not isinstance(exc, StorageError):
                # One bad entry must not fail its neighbours: commit each alone.
                for ticket in tickets:
                    self._flush([ticket], acked, released)
                return
            for ticket in tickets:
                ticket.error = exc
                ticket.done = True
            return
        try:
            ring_storage.write_commit(self.storage, commit)
        except StorageError as exc:
            self._failed = str(exc)
            for ticket in tickets:
                ticket.error = exc
                ticket.done = True
            return
        self.ring.apply(commit)
        self.commits += 1
        noted = self._noted_cursors
        if noted is not None and noted[0] <= self.ring.acked and noted[1] <= self.ring.released:
            self._noted_cursors = None
        results = commit.results
        if len(tickets) == 1:
            tickets[0].results = results
            tickets[0].done = True
        else:
            for ticket in tickets:
                ticket.results = results[:len(ticket.entries)]
                results = results[len(ticket.entries):]
                ticket.done = True
        for listener in list(self.commit_listeners) if self.commit_listeners else ():
            try:
                listener(self.ring.next_seq)
            except Exception:  # the commit is durable; a listener's fault must not undo the report
                pass

    # -- reading ------------------------------------------------------------

    def records(self, from_seq=None, with_frames=False):
        """Committed records in sequence order, from `from_seq` (default: oldest kept)."""
        with self._lock:
            first_seqs = list(self.ring.first_seqs)
            tail_seq = self.ring.next_seq
            tail_pos = self.ring.write_pos
            head_index = self.ring.head_index
        order = sorted((s, i) for i, s in enumerate(first_seqs) if s is not None)
        for k, (first, index) in enumerate(order):
            next_first = order[k + 1][0] if k + 1 < len(order) else tail_seq
            if from_seq is not None and next_first <= from_seq:
                continue
            base = self.geo.segment_offset(index)
            end = tail_pos - base if index == head_index else self.geo.segment_size
            buf = self.storage.pread(base, end)
            off = layout.SEGMENT_HEADER_SIZE
            while off < len(buf):
                rec = record.decode_at(buf, off)
                if rec is None or rec.seq >= tail_seq:
                    break
                if from_seq is None or rec.seq >= from_seq:
                    if with_frames:
                        yield rec, buf[off:off + rec.size]
                    else:
                        yield rec
                off += rec.size

    def snapshot(self):
        """(first_seqs, next_seq, write_pos, head_index) of the committed state."""
        with self._lock:
            ring = self.ring
            return list(ring.first_seqs), ring.next_seq, ring.write_pos, ring.head_index

    def effective_fill(self):
        """Fraction of segments holding unreleased records, counting noted cursors."""
        released = self.noted_cursors()[1]
        with self._lock:
            count = self.ring.segments_unreleased(released)
        return count / self.geo.segment_count

    def stats(self):
        ring = self.ring
        oldest = min((s for s in ring.first_seqs if s is not None), default=0)
        return {
            "device_id": self.device_id,
            "first_seq": oldest,
            "next_seq": ring.next_seq,
            "acked": ring.acked,
            "released": ring.released,
            "unsynced": ring.next_seq - ring.acked,
            "segments": self.geo.segment_count,
            "segment_size": self.geo.segment_size,
            "segments_in_use": ring.segments_in_use(),
            "segments_unreleased": ring.segments_unreleased(),
            "fill": ring.segments_unreleased() / self.geo.segment_count,
            "outage": ring.outage,
            "commits": self.commits,
        }

    def close(self):
        """Refuse new appends, let the queued ones commit, then close the file."""
        with self._lock:
            self._closing = True
            while self._flushing:
                self._idle.wait()
            if self.storage is not None:
                self.storage.close()
                self.storage = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
