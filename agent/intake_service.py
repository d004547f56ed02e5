"""What the POS intake does with one transaction (docs/SPEC.md §5.4).

`IntakeService.submit(obj)` validates, applies idempotency and the original
rule, journals, and returns the receipt result; or raises `Refused` with a
wire error code.  No socket here: agent/intake.py feeds it, tests call it
directly.  Thread-safe: many connection threads call `submit` at once and
their appends share commits through the journal's group commit.

Idempotency index: pos_txn_id -> (content digest, seq), rebuilt from the
journal at start.  Two submissions of the same pos_txn_id race through
`_pending`: the second waits for the first to finish, then compares.
"""

import collections
import hashlib
import threading

from daozhang.agent.core import cbor, record, receipt, txn
from daozhang.agent.core.checkpoint import audit_path
from daozhang.agent.core.errors import (DaozhangError, JournalFull, PaymentDataRefused,
                                        StorageError, ValidationError)

RECEIPT_CACHE = 4096


class Refused(DaozhangError):
    """A submission refused with a wire `code` (SPEC 5.3); nothing was journaled."""

    def __init__(self, code, message, field=None):
        super().__init__(message)
        self.code = code
        self.field = field


def content_digest(payload):
    return hashlib.sha256(cbor.dumps(payload)).digest()[:16]


# The index holds one int per retained transaction: digest (128 bits) above
# seq (64 bits).  A (bytes, int) tuple costs ~130 bytes, this ~50: the index
# of a journal holding a million transactions is rebuilt at every start.
_SEQ_BITS = 64


def _pack(digest, seq):
    return (int.from_bytes(digest, "big") << _SEQ_BITS) | seq


def _unpack(packed):
    return (packed >> _SEQ_BITS).to_bytes(16, "big"), packed & ((1 << _SEQ_BITS) - 1)


class IntakeService:
    def __init__(self, journal, profile=None, log=None, alert_hook=None, clock_trusted=lambda: True):
        self.journal = journal
        self.dev = journal.device_id
        self.profile = profile
        self.log = log or (lambda event, **fields: None)
        # Hook: the alert engine (agent/core/alerts.py, wired by the daemon)
        # receives alert_hook(kind, severity, detail) on journal_full.
        self.alert_hook = alert_hook or (lambda kind, severity, detail: None)
        self.clock_trusted = clock_trusted
        self._lock = threading.Lock()
        self._index = {}                       # pos_txn_id -> _pack(digest, seq)
        self._pending = {}                     # pos_txn_id -> threading.Event
        self._receipts = collections.OrderedDict()   # pos_txn_id -> result dict
        self.accepting = True
        self.last_wall_ms = 0
        self._wall_by_boot = {}                # boot_id -> newest wall_ms journaled
        self.committed = 0
        # Hook: called with (seq, payload) after each committed transaction
        # (the settlement watchdog listens here).
        self.on_commit = lambda seq, payload: None
        self._rebuild_index()

    def _rebuild_index(self):
        for rec in self.journal.records():
            self.last_wall_ms = max(self.last_wall_ms, rec.wall_ms)
            if rec.wall_ms > self._wall_by_boot.get(rec.boot_id, -1):
                self._wall_by_boot[rec.boot_id] = rec.wall_ms
            if rec.type == record.TYPE_TRANSACTION:
                pid = rec.payload.get("pos_txn_id")
                if isinstance(pid, str):
                    self._index[pid] = _pack(content_digest(rec.payload), rec.seq)

    def last_wall_before(self, own_boot_id):
        """Newest wall time journaled by earlier boots (ours has just written a boot record)."""
        walls = [w for b, w in self._wall_by_boot.items() if b != own_boot_id]
        return max(walls) if walls else 0

    # -- the one entry point ---------------------------------------------------

    def submit(self, obj):
        if not self.accepting:
            raise Refused("shutting_down", "the agent is stopping; retry in a moment")
        try:
            payload = txn.validate(obj)
        except PaymentDataRefused as exc:
            self.log("txn_refused", code=exc.code, field=exc.field)
            raise Refused(exc.code, str(exc), exc.field) from None
        except ValidationError as exc:
            self.log("txn_refused", code=exc.code, field=exc.field)
            raise Refused(exc.code, str(exc), exc.field) from None
        self._check_merchant(payload)
        pid = payload["pos_txn_id"]
        digest = content_digest(payload)
        while True:
            with self._lock:
                known = self._index.get(pid)
                if known is not None:
                    return self._duplicate(pid, digest, _unpack(known))
                waiting = self._pending.get(pid)
                if waiting is None:
                    self._check_original(payload)
                    done = self._pending[pid] = threading.Event()
                    break
            waiting.wait()
        try:
            result = self._append(payload)
            with self._lock:
                self._index[pid] = _pack(digest, result["seq"])
                self._remember(pid, result)
                self.committed += 1
        finally:
            with self._lock:
                del self._pending[pid]
            done.set()
        self.on_commit(result["seq"], payload)
        self.log("txn_committed", seq=result["seq"], pos_txn_id=pid, kind=payload["kind"],
                 amount=payload["amount"], currency=payload["currency"])
        return result

    # -- rules -----------------------------------------------------------------

    def _check_merchant(self, payload):
        p = self.profile
        if not p:
            return
        for key in ("merchant_id", "terminal_id"):
            if p.get(key) and payload[key] != p[key]:
                self.log("txn_refused", code="merchant_mismatch", field=key)
                raise Refused("merchant_mismatch", "%s: not this terminal's (see its merchant profile)"
                              % key, key)

    def _check_original(self, payload):
        original = payload.get("original_pos_txn_id")
        if payload["kind"] in txn.NEEDS_ORIGINAL and original not in self._index:
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

    def _append(self, payload):
        try:
            appended = self.journal.append(record.TYPE_TRANSACTION, payload)
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
        return self._result(receipt.from_appended(self.dev, appended))

    def _result(self, rc):
        return {"dev": rc["dev"], "seq": rc["seq"], "hash": rc["hash"].hex(),
                "checkpoint_seq": rc["cp_seq"], "receipt_code": receipt.encode(rc),
                "signed": rc["alg"] != 0, "clock_trusted": bool(self.clock_trusted()),
                "duplicate": False}

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
