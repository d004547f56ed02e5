"""What the POS intake does with one transaction (docs/SPEC.md §5.4).

`IntakeService.submit_many(objs)` validates a batch, applies idempotency and
the original rule, journals the accepted ones in one commit, and returns
each one's receipt result or `Refused` (a wire error code); `submit(obj)` is
the same for one, raising `Refused`.  No socket here: agent/intake.py's
committer feeds it a batch per commit, tests call it directly.  Thread-safe:
concurrent callers' appends also share commits through the journal's group
commit.

Idempotency index: pos_txn_id -> (content digest, seq), a SQLite file
beside the journal (agent/intake_index.py): at start only the records after
its cursor are indexed, and memory holds nothing per transaction.  Two
submissions of the same pos_txn_id race through `_pending`: the second
waits for the first to finish, then compares.  `_pending` also tells how far
the index's cursor (and the settlement index's) may move: a transaction
committed to the journal but not yet through the index and the commit
listeners holds it back.
"""

import collections
import contextlib
import hashlib
import threading
import time

from daozhang.agent.core import merchant_ids
from daozhang.agent.core.intake import receipt, txn
from daozhang.agent.core.journal import record
from daozhang.agent.core.journal.checkpoint import audit_path
from daozhang.agent.core.errors import (DaozhangError, JournalFull, PaymentDataRefused,
                                        StorageError, ValidationError)
from daozhang.agent.index_db import index_path
from daozhang.agent.intake_index import IntakeIndex
from daozhang.agent.replay_records import readable_records
from daozhang.agent.startup_progress import StartupProgress

# Receipts kept for quick answers to resubmissions (others are rebuilt from
# the journal); each ~600 B of Python objects, so the cache stays small.
RECEIPT_CACHE = 512
COMMIT_EVERY_S = 1.0     # the index commits (moves its cursor) at most this often
# Segments kept free of sales for settlement acks, alerts and cursor commits.
RESERVED_SEGMENTS = 1


class Refused(DaozhangError):
    """A submission refused with a wire `code` (SPEC 5.3); nothing was journaled."""

    def __init__(self, code, message, field=None):
        super().__init__(message)
        self.code = code
        self.field = field


def content_digest(payload):
    return digest_of(record.Encoded(payload))


def _nothing():
    pass


_LOOK_UP = object()       # _known_locked: no batch lookup given, ask the index


def _once(fn):
    """fn, callable any number of times, run the first time only."""
    state = [fn]

    def call():
        f, state[0] = state[0], None
        if f is not None:
            f()
    return call


def digest_of(encoded):
    """The idempotency digest of a payload already encoded (record.Encoded)."""
    return hashlib.sha256(encoded.data).digest()[:16]


class IntakeService:
    def __init__(self, journal, profile=None, log=None, alert_hook=None, clock_trusted=lambda: True,
                 now_ms=lambda: time.time_ns() // 1000000, on_commit=None):
        self.journal = journal
        self.dev = journal.device_id
        self.profile = profile
        self.log = log or (lambda event, **fields: None)
        # The daemon's EventLog writes a commit's lines at once (hold); any
        # other log callable, line by line.
        self._hold_log = getattr(self.log, "hold", contextlib.nullcontext)
        # Hook: the alert engine (agent/core/settlement/alerts.py, wired by the daemon)
        # receives alert_hook(kind, severity, detail) on journal_full.
        self.alert_hook = alert_hook or (lambda kind, severity, detail: None)
        self.clock_trusted = clock_trusted
        self.now_ms = now_ms        # the terminal's clock: a sale far from it is refused
        self._lock = threading.Lock()
        self.index = IntakeIndex(index_path(journal, "intake"), journal, log=self.log)
        # pos_txn_id -> lowest seq its record can get; `_released` wakes the
        # callers waiting for one to finish (one shared condition: no Event per batch).
        self._pending = {}
        self._released = threading.Condition(self._lock)
        self._waiting = 0
        self._receipts = collections.OrderedDict()   # pos_txn_id -> result dict
        self.accepting = True
        self.committed = 0
        self._last_commit = time.monotonic()
        self._note_wall = None      # (wall_ms, boot_id) of the newest commit, for the index
        # Called with (seq, payload, data) after each committed transaction,
        # `data` the payload's canonical CBOR as journaled (the settlement
        # watchdog's on_transaction queues those bytes, agent/assemble.py).
        self.on_commit = on_commit or (lambda seq, payload, data: None)
        self._catch_up()

    def _catch_up(self):
        """Index the journal records after the index's cursor (all of them
        when the index is new or was rebuilt)."""
        cursor = self.index.cursor
        last = cursor
        progress = StartupProgress("intake", self.log)
        for rec in readable_records(self.journal, None if cursor is None else cursor + 1, self._replay_damaged):
            last = rec.seq
            progress.record(rec.seq)
            self.index.note_wall(rec.boot_id, rec.wall_ms)
            if rec.type == record.TYPE_TRANSACTION:
                pid = rec.payload.get("pos_txn_id")
                if isinstance(pid, str):
                    self.index.put(pid, content_digest(rec.payload), rec.seq)
        self.index.forget_before(self._oldest_seq())
        self.index.checkpoint(last)

    def _replay_damaged(self, error, segment_first_seq, resume_seq):
        self.log("replay_skipped_damage", level="critical", part="intake", segment_first_seq=segment_first_seq,
                 resume_seq=resume_seq, error=str(error))

    def _oldest_seq(self):
        return min((s for s in self.journal.ring.first_seqs if s is not None), default=0)

    def last_wall_before(self, own_boot_id):
        """Newest wall time journaled by earlier boots (ours has just written a boot record)."""
        with self._lock:
            return self.index.last_wall_before(own_boot_id)

    def listeners_floor(self):
        """The highest seq such that every transaction record up to it is in
        the index and has been handed to on_commit: the cursor an index
        derived from the journal may record."""
        with self._lock:
            return self._floor_locked()

    def _floor_locked(self):
        floor = self.journal.ring.next_seq - 1
        for low in self._pending.values():
            if low - 1 < floor:
                floor = low - 1
        return floor

    def _maybe_commit_locked(self):
        if self._note_wall is not None:
            wall_ms, boot_id = self._note_wall
            self._note_wall = None
            self.index.note_wall(boot_id, wall_ms)
        now = time.monotonic()
        if now - self._last_commit >= COMMIT_EVERY_S:
            self._last_commit = now
            self.index.forget_before(self._oldest_seq())
            self.index.checkpoint(self._floor_locked())

    def flush(self):
        """Commit the index now (its cursor included); the daemon's stop may
        call it, and anything not committed is re-indexed at the next start."""
        with self._lock:
            self.index.checkpoint(self._floor_locked())

    # -- the entry points ----------------------------------------------------

    def submit(self, obj):
        """One transaction: its receipt result, or raises Refused."""
        out = self.submit_many([obj])[0]
        if isinstance(out, Refused):
            raise out
        return out

    def submit_many(self, objs):
        """A batch of transactions: for each, in order, its receipt result or
        its Refused (commit_many, then its finish)."""
        out, finish = self.commit_many(objs)
        finish()
        return out

    def commit_many(self, objs):
        """A batch of transactions (the intake hands over every request that
        arrived while the last commit ran): (results, finish).  Each result,
        in order, is a receipt (its record durable) or a Refused.  Validation
        and idempotency run for the whole batch under one lock hold, the
        accepted ones are journaled in one commit (a few when they exceed a
        quarter segment).  A pos_txn_id seen twice in the batch, or pending
        in another caller's batch, is answered after that one finishes, as a
        resubmission (same receipt or conflict).

        finish() (call it once, after the answers are sent: it is not on the
        POS's reply path) puts the batch in the index in one statement, hands
        it to on_commit, logs it and releases its ids: until then a
        resubmission of one waits, and the index cursors stay below it."""
        out = [None] * len(objs)
        if not self.accepting:
            return [Refused("shutting_down", "the agent is stopping; retry in a moment")
                    for _ in objs], _nothing
        checked = []
        for i, obj in enumerate(objs):
            try:
                payload = self._validate(obj)
            except Refused as exc:
                out[i] = exc
                continue
            # Encoded once: the digest, the batch's size and the journal record share it.
            encoded = record.Encoded(payload)
            checked.append((i, payload, payload["pos_txn_id"], digest_of(encoded), encoded))
        batch, later = [], []
        with self._lock:
            low = self.journal.ring.next_seq   # every seq of this batch is at least this
            own = set()
            # One index statement for the batch: most ids are new.
            knowns = self.index.get_many([item[2] for item in checked]) if checked else {}
            for item in checked:
                i, payload, pid, digest, _ = item
                if pid in own or pid in self._pending:
                    later.append(item)
                    continue
                try:
                    known = self._known_locked(pid, knowns.get(pid))
                    if known is not None:
                        out[i] = self._duplicate(pid, digest, known)
                        continue
                    self._check_original(payload, own)
                except Refused as exc:
                    out[i] = exc
                    continue
                own.add(pid)
                batch.append(item)
                self._pending[pid] = low
        finish = _nothing
        if batch:
            committed = []
            finish = _once(lambda: self._finish(batch, committed, out))
            try:
                self._commit_batch(batch, out, committed)
            except BaseException:
                finish()        # what did commit is indexed; the ids are released
                raise
        if later:
            finish()            # a later one may wait for this batch's ids
            finish = _nothing
        for i, payload, pid, digest, encoded in later:
            try:
                out[i] = self._submit_one(payload, pid, digest, encoded)
            except Refused as exc:
                out[i] = exc
        return out, finish

    def _validate(self, obj):
        try:
            # A clock the guard does not trust (before the build date, stepped
            # back) cannot judge a sale's time: the window applies only to a
            # trusted one (SPEC 4.3).
            now = self.now_ms() if self.clock_trusted() else None
            payload = txn.validate(obj, now, txn.time_window(self.profile))
        except (PaymentDataRefused, ValidationError) as exc:
            self.log("txn_refused", code=exc.code, field=exc.field)
            raise Refused(exc.code, str(exc), exc.field) from None
        self._check_merchant(payload)
        return payload

    def _known_locked(self, pid, known=_LOOK_UP):
        if known is _LOOK_UP:
            known = self.index.get(pid)
        if known is not None and known[1] < self._oldest_seq():
            return None     # reclaimed since the index's last pruning
        return known

    def _submit_one(self, payload, pid, digest, encoded):
        """One transaction whose pos_txn_id may be pending in another batch:
        wait for that one, then answer as a resubmission or commit it."""
        with self._lock:
            while pid in self._pending:
                self._waiting += 1
                try:
                    self._released.wait()
                finally:
                    self._waiting -= 1
            known = self._known_locked(pid)
            if known is not None:
                return self._duplicate(pid, digest, known)
            self._check_original(payload, ())
            self._pending[pid] = self.journal.ring.next_seq
        out, batch, committed = [None], [(0, payload, pid, digest, encoded)], []
        try:
            self._commit_batch(batch, out, committed)
        finally:
            self._finish(batch, committed, out)
        if isinstance(out[0], Refused):
            raise out[0]
        return out[0]

    def _commit_batch(self, batch, out, committed):
        """Journal `batch` [(i, payload, pid, digest, encoded)]: each receipt
        (or Refused) into out[i], each committed chunk and its Appended list
        onto `committed` (for _finish).  Called with the batch's ids pending."""
        for chunk in self._chunks(batch):
            try:
                appended = self._append_many([item[4] for item in chunk])
            except Refused as exc:
                for i, _, _, _, _ in chunk:
                    out[i] = exc
                continue
            committed.append((chunk, appended))
            signed = appended[0].checkpoint["alg"] != 0
            trusted = bool(self.clock_trusted())
            for (i, _, _, _, _), a, code in zip(chunk, appended, receipt.codes(self.dev, appended)):
                out[i] = self._answer(a.seq, a.hash, a.checkpoint_seq, code, signed, trusted)
            with self._lock:
                self.committed += len(chunk)

    def _finish(self, batch, committed, out):
        """After the answers: index what `batch` committed, hand it to
        on_commit, log it; then release its ids (whatever fails here)."""
        try:
            for chunk, appended in committed:
                with self._lock:
                    self.index.put_many([(pid, digest, a.seq)
                                         for (_, _, pid, digest, _), a in zip(chunk, appended)])
                    for i, _, pid, _, _ in chunk:
                        if isinstance(out[i], dict):
                            self._remember(pid, out[i])
                    last = appended[-1]
                    self._note_wall = (last.checkpoint_wall_ms, last.checkpoint_boot_id)
                with self._hold_log():
                    for (_, payload, _, _, encoded), a in zip(chunk, appended):
                        self.on_commit(a.seq, payload, encoded.data)
                        self.log("txn_committed", seq=a.seq, pos_txn_id=payload["pos_txn_id"],
                                 kind=payload["kind"], amount=payload["amount"],
                                 currency=payload["currency"])
        finally:
            with self._lock:
                for _, _, pid, _, _ in batch:
                    del self._pending[pid]
                self._maybe_commit_locked()
                if self._waiting:
                    self._released.notify_all()

    def _chunks(self, batch):
        """`batch` cut into commits of at most a quarter segment each: one
        commit must fit a segment, whatever the POS sends at once."""
        if len(batch) == 1:
            yield batch                 # one sale is one commit however big
            return
        budget = self.journal.ring.capacity() // 4
        chunk, size = [], 0
        for item in batch:
            n = len(item[4].data) + 64                  # + the record frame's header
            if chunk and size + n > budget:
                yield chunk
                chunk, size = [], 0
            chunk.append(item)
            size += n
        if chunk:
            yield chunk

    # -- rules -----------------------------------------------------------------

    def _check_merchant(self, payload):
        p = self.profile
        if not p:
            return
        for key in ("merchant_id", "terminal_id"):
            allowed = (merchant_ids.allowed(p, payload.get("channel")) if key == "merchant_id"
                       else (p.get(key),))
            if p.get(key) and payload[key] not in allowed:
                self.log("txn_refused", code="merchant_mismatch", field=key)
                raise Refused("merchant_mismatch", "%s: not this terminal's (see its merchant profile)"
                              % key, key)

    def _check_original(self, payload, own):
        """The original must be committed, or earlier in the same commit (`own`)."""
        original = payload.get("original_pos_txn_id")
        if payload["kind"] in txn.NEEDS_ORIGINAL and original not in own \
                and self.index.get(original) is None:
            self.log("txn_refused", code="original_unknown", field="original_pos_txn_id")
            raise Refused("original_unknown", "original_pos_txn_id: no committed transaction with "
                          "that id in this journal", "original_pos_txn_id")

    def _duplicate(self, pid, digest, known):
        if known[0] != digest:
            self.log("txn_refused", code="conflict", pos_txn_id=pid)
            raise Refused("conflict", "pos_txn_id: already committed (seq %d) with different "
                          "content" % known[1], "pos_txn_id")
        result = self._receipts.get(pid)
        if result is None:
            result = self._receipt_from_journal(known[1])
            self._remember(pid, result)
        self.log("txn_duplicate", seq=known[1], pos_txn_id=pid)
        out = dict(result)
        out["duplicate"] = True
        return out

    def _remember(self, pid, result):
        self._receipts[pid] = result
        while len(self._receipts) > RECEIPT_CACHE:
            self._receipts.popitem(last=False)

    # -- journal ---------------------------------------------------------------

    def _append_many(self, encoded):
        try:
            self._check_reserve()
            return self.journal.append_many([(record.TYPE_TRANSACTION, e) for e in encoded])
        except JournalFull as exc:
            self.log("journal_full", level="critical", detail=str(exc))
            self.alert_hook("journal_full", "critical", {"detail": str(exc)})
            raise Refused("journal_full", "the terminal's journal is full: nothing was written; "
                          "the backend must acknowledge records before new sales can be taken") from None
        except StorageError as exc:
            self.log("storage_error", level="error", detail=str(exc))
            self.alert_hook("storage_error", "critical", {"detail": str(exc)})
            raise Refused("storage_error", "the terminal could not write its journal: nothing "
                          "was committed") from None

    def _check_reserve(self):
        """Sales stop one segment early: the last free segment is kept for
        what lets the journal drain (settlement acks, alerts, cursor
        commits), which would otherwise find it full and be lost."""
        spare = self.journal.ring.spare_segments(self.journal.noted_cursors()[1])
        if spare < RESERVED_SEGMENTS:
            raise JournalFull("journal full for sales: %d spare segment(s), %d kept for settlement "
                              "acks and alerts" % (spare, RESERVED_SEGMENTS))

    def _answer(self, seq, rhash, cp_seq, code, signed, trusted):
        return {"dev": self.dev, "seq": seq, "hash": rhash.hex(), "checkpoint_seq": cp_seq,
                "receipt_code": code, "signed": signed, "clock_trusted": trusted,
                "duplicate": False}

    def _result(self, rc):
        return self._answer(rc["seq"], rc["hash"], rc["cp_seq"], receipt.encode(rc), rc["alg"] != 0,
                            bool(self.clock_trusted()))

    def _receipt_from_journal(self, seq):
        """Rebuild the receipt of committed record `seq` (a resubmission after a restart)."""
        cp = None
        for rec in self.journal.records(from_seq=seq):
            if rec.type == record.TYPE_CHECKPOINT and rec.seq > seq:
                cp = rec
                break
        if cp is None:
            raise Refused("internal_error", "record %d has no covering checkpoint" % seq)
        first = cp.payload["first"]
        hashes = []
        for rec in self.journal.records(from_seq=first):
            if rec.seq >= cp.seq:
                break
            hashes.append(rec.hash)
        p = cp.payload
        rc = {"v": receipt.VERSION, "dev": self.dev, "seq": seq, "hash": hashes[seq - first],
              "cp_seq": cp.seq, "head": cp.prev, "wall_ms": cp.wall_ms, "boot_id": cp.boot_id,
              "mono_ms": cp.mono_ms, "alg": p["alg"],
              "kid": p["kid"], "first": first, "acked": p["acked"], "released": p["released"],
              "state": p["state"], "path": audit_path(hashes, seq - first), "sig": p["sig"]}
        return self._result(rc)
