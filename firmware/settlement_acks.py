"""Settlement acks on the board: the backend's signed settlement rows
(SPEC 7.8), already authenticated by the sync rules, become one journal
commit per batch and resolve the sales they settle.

    acks = BoardSettlements(terminal)
    UmqttLink(..., settlements=acks.apply, status_extra=acks.status)

The Linux agent's rules (agent/settlement_apply.py), in RAM:
- an ack id seen before with the same bytes: re-sent, processed, nothing changes;
  with other bytes: `replay`, refused with a security alert;
- older than the watchdog's window (trusted clock): `stale`, refused;
- a row the watchdog has nothing to check for: a duplicate, processed;
- otherwise journaled (type 2, with the checks) with the rest of the batch.
Every processed ack moves the confirmation cursor (settlement_delivery.
AppliedCursor), which goes up in the status: the backend stops resending
once it sees it.  An ack whose commit failed is not processed (sent again).
The ids seen are kept for the last MAX_IDS acks (the backend sends one
window past the confirmed cursor at most; older ones are stale anyway): in
the terminal's sale index on flash when it has one (firmware/sale_index_flash.py,
rebuilt from the journal's type 2 records like the rest of it: about 100
bytes of heap an id otherwise), else in RAM.
"""

import hashlib

from daozhang.agent.core.errors import DaozhangError, JournalFull, StorageError
from daozhang.agent.core.journal import record
from daozhang.agent.core.sync.settlement_delivery import AppliedCursor

MAX_IDS = 2048


class BoardSettlements:
    def __init__(self, terminal, max_ids=MAX_IDS):
        self.terminal = terminal
        index = getattr(terminal, "index", None)
        self.flash = index if hasattr(index, "put_ack") else None
        self.cursor = AppliedCursor()
        self.seen = {}                 # ack id -> sha256 of the ack's bytes, insertion ordered
        self.order = []
        self.max_ids = max_ids
        self.applied = 0

    def status(self):
        return {"settle_n": self.cursor.value}

    def _known(self, ack_id):
        if self.flash is not None:
            return self.flash.ack_digest(ack_id)
        return self.seen.get(ack_id)

    def _remember(self, ack_id, digest, at):
        if self.flash is not None:
            self.flash.put_ack(ack_id, digest, at)
            return
        self.seen[ack_id] = digest
        self.order.append(ack_id)
        if len(self.order) > self.max_ids:
            self.seen.pop(self.order.pop(0), None)

    def apply(self, items, redelivered=False):
        t = self.terminal
        watchdog = t.watchdog
        now = t.journal.clock.now().wall_ms
        before = self.cursor.value
        rejected, entries, applied, outputs, batch = [], [], [], [], {}
        for msg, payload in items:
            ack_id = msg["id"]
            digest = hashlib.sha256(bytes(payload)).digest()
            known = batch.get(ack_id) or self._known(ack_id)
            if known is not None:
                if known != digest:
                    rejected.append(self._refuse(now, "replay", msg))
                self.cursor.done(msg["n"])
                continue
            if watchdog is None:
                self.cursor.done(msg["n"])
                continue
            if watchdog.clock_trusted and msg["at"] < now - watchdog.expire_after:
                rejected.append(self._refuse(now, "stale", msg))
                self.cursor.done(msg["n"])
                continue
            try:
                out = watchdog.handle(("settlement", msg["row"], now))
            except DaozhangError:
                self.cursor.done(msg["n"])
                continue
            checks = [o for tag, o in out if tag == "check"]
            if not checks:
                self.cursor.done(msg["n"])
                continue
            batch[ack_id] = digest
            entries.append((record.TYPE_SETTLEMENT_ACK, {"ack": bytes(payload), "checks": checks}))
            applied.append((msg, digest))
            outputs.extend(out)
        if entries:
            try:
                t.journal.append_many(entries)
            except (JournalFull, StorageError):
                applied, outputs = [], []          # not processed: the backend sends them again
        for msg, digest in applied:
            self._remember(msg["id"], digest, msg["at"])
            self.cursor.done(msg["n"])
            self.applied += 1
        t.apply_outputs(outputs)
        return {"settle_n": self.cursor.value, "moved": self.cursor.value != before, "rejected": rejected}

    def _refuse(self, now, reason, msg):
        self.terminal.apply_outputs([("alert", {
            "kind": "security", "key": reason, "active": True, "at": now, "currency": self.terminal.alerts.currency,
            "detail": {"reason": reason, "what": "settlement ack", "acquirer_ref": msg["row"].get("acquirer_ref")}})])
        return reason
