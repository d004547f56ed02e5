"""The settlement plugin's apply path: a batch of settlement acks that passed
the sync layer's checks (schema, device, key, signature) becomes one journal
commit, one index checkpoint and one move of the confirmation cursor
(docs/SPEC.md 7.8.3, 7.8.7).

Per ack, in order (the first three are core/settlement_ack.screen):
- its id already accepted with the very same bytes: the backend (or the
  broker) sent it again; nothing changes, it counts as processed;
- its id accepted with other bytes: `replay`, refused, a security alert;
- older than the watch window (trusted clock): `stale`, refused, an alert;
- the watchdog finds nothing to check (that acquirer_ref already settled):
  a duplicate row, nothing changes;
- otherwise its checks run and it is journaled (type 2) with the others of
  the batch in one commit.

Every ack above counts as processed for the cursor (settlement_delivery.
AppliedCursor): the backend stops sending it once the terminal's status
says so.  Only an ack whose journal commit failed is not processed: the
backend sends it again.

Why one commit per batch: one fsync and one index commit per ack held a
terminal to 11-22 acks a second; a queue of 20,000 took half an hour.
"""

import json

from daozhang.agent.core.errors import DaozhangError, JournalFull, StorageError
from daozhang.agent.core.journal import record
from daozhang.agent.core.sync import settlement_ack
from daozhang.agent.core.sync.settlement_delivery import AppliedCursor
from daozhang.agent.fault_hook import crash_point

CURSOR_META = "settle_cursor"


def load_cursor(index):
    """The cursor as of the index's last commit (AppliedCursor(0) if none)."""
    text = index.db.get_meta(CURSOR_META)
    if text is None:
        return AppliedCursor()
    value, above = json.loads(text)
    return AppliedCursor(value, above)


def save_cursor(index, cursor):
    index.db.set_meta(CURSOR_META, json.dumps(cursor.state(), separators=(",", ":")))


class _Batch:
    """What one batch's acks came to, before its one journal commit."""

    def __init__(self):
        self.entries = []       # type 2 records to journal
        self.applied = []       # (msg, digest, checks) of those records
        self.outputs = []       # the watchdog's outputs for them
        self.ids = {}           # ack id -> digest, accepted in this batch
        self.again = []         # n of the redelivered
        self.rejected = []      # reasons


def apply_batch(plugin, items):
    """Apply [(msg, payload), ...]; returns {"settle_n", "moved", "rejected": [reasons]}."""
    cursor = plugin.settle_cursor
    before = cursor.value
    with plugin._lock:
        now = plugin.now()
        batch = _Batch()
        for msg, payload in items:
            if not _take(plugin, batch, msg, payload, now):
                cursor.done(msg["n"])      # processed: nothing to journal
        if batch.again:   # one line per batch: a re-sent window is hundreds of acks
            plugin.log("settlement_redelivered", acks=len(batch.again), first_n=batch.again[0],
                       last_n=batch.again[-1])
        if batch.entries and not _journal(plugin, batch.entries):
            batch.applied, batch.outputs = [], []
        for msg, digest, checks in batch.applied:
            plugin.index.put_ack(msg["id"], digest, msg["at"])
            plugin.counts["settlement_acks"] += 1
            cursor.done(msg["n"])
            for result in checks:
                plugin.log("settlement_checked", acquirer_ref=result["acquirer_ref"],
                           pos_txn_id=result["pos_txn_id"], seq=result["seq"],
                           checks=",".join(result["checks"]) or "ok")
        actions = []
        for tag, out in batch.outputs:
            if tag == "alert":
                actions.extend(plugin.machine.observe(out))
        plugin._emit(actions)
        if cursor.value != before or cursor.above:
            save_cursor(plugin.index, cursor)
        plugin._checkpoint(plugin._safe_cursor())
    return {"settle_n": cursor.value, "moved": cursor.value != before, "rejected": batch.rejected}


def _take(plugin, batch, msg, payload, now):
    """Screen one ack and run its checks; True if it joins the batch's commit."""
    ack_id, ref = msg["id"], msg["row"]["acquirer_ref"]
    digest = settlement_ack.ack_digest(payload)
    known = batch.ids.get(ack_id) or plugin.index.ack_digest(ack_id)
    verdict = settlement_ack.screen(known, digest, msg["at"], now, plugin.watchdog.clock_trusted,
                                    plugin.watchdog.expire_after)
    if verdict == settlement_ack.REDELIVERED:
        plugin.counts["redelivered"] += 1
        batch.again.append(msg["n"])
        return False
    if verdict != settlement_ack.FRESH:
        what = ("settlement ack id %s already accepted" % ack_id.hex()
                if verdict == settlement_ack.REPLAY else
                "settlement ack from %d, older than the watch window" % msg["at"])
        batch.rejected.append(_refuse(plugin, now, verdict, ref, what))
        return False
    try:
        out = plugin.watchdog.handle(("settlement", msg["row"], now))
    except DaozhangError as exc:
        plugin.counts["invalid"] += 1
        plugin.log("settlement_invalid", level="error", error=str(exc))
        return False
    checks = [o for tag, o in out if tag == "check"]
    if not checks:
        plugin.counts["duplicates"] += 1
        plugin.log("settlement_duplicate", acquirer_ref=ref)
        return False
    batch.ids[ack_id] = digest
    batch.entries.append((record.TYPE_SETTLEMENT_ACK, {"ack": bytes(payload), "checks": checks}))
    batch.applied.append((msg, digest, checks))
    batch.outputs.extend(out)
    return True


def _journal(plugin, entries):
    """One commit of the batch's type 2 records; False if the journal refused it."""
    crash_point("settlement_before_journal")
    try:
        plugin.journal.append_many(entries)
        committed = True
    except (JournalFull, StorageError) as exc:
        # Not processed: the backend keeps them pending and sends them again.
        plugin.log("settlement_journal_failed", level="error", error=str(exc), acks=len(entries))
        committed = False
    crash_point("settlement_after_journal")
    return committed


def _refuse(plugin, now, reason, ref, detail):
    plugin.counts["replays"] += 1
    plugin.log("sync_rejected", level="warning", reason=reason, detail=detail)
    plugin._observe({"kind": "security", "key": reason, "active": True, "at": now,
                     "detail": {"reason": reason, "what": "settlement ack", "acquirer_ref": ref}},
                    now)
    return reason
