"""The settlement plugin at start: its SQLite index as of the index's
cursor, then the journal records after it (docs/adr/0004-on-disk-sale-index.md).

Transactions, settlement acks and clock records go into the watchdog
(outputs dropped), alert records back into the alert machine; a missing or
stale index is rebuilt so from the whole journal.  A long rebuild commits
the index every REPLAY_COMMIT_EVERY transactions, so a cut-short one
resumes from there.
"""

import time

from daozhang.agent import settlement_apply
from daozhang.agent.core import cbor
from daozhang.agent.core.errors import DaozhangError
from daozhang.agent.core.journal import record
from daozhang.agent.core.sync.settlement_ack import ack_digest
from daozhang.agent.replay_records import readable_records
from daozhang.agent.startup_progress import StartupProgress

# A rebuild from the whole journal commits the index this often (transactions).
REPLAY_COMMIT_EVERY = 50000


def rebuild(plugin):
    """Bring `plugin`'s watchdog, machine and cursor up to the journal's end.

    Returns the alert observations of the type 2 records after the last
    alert record: a crash between a settlement's commit and its alert
    actions' commit lost those; start() observes them again (the machine
    ignores what it already holds)."""
    unjournaled = []
    t0 = time.monotonic()
    index, watchdog, log = plugin.index, plugin.watchdog, plugin.log
    cursor = index.cursor
    plugin.settle_cursor = settlement_apply.load_cursor(index)
    if cursor is not None:
        # The alert records are in the index file already (as of its cursor).
        watchdog.clock_trusted, watchdog.last_trusted_now = index.load_clock()
    counts = {"transactions": 0, "settlements": 0, "clock": 0, "alerts": 0, "mismatch": 0}
    last = cursor
    progress = StartupProgress("settlement", log)

    def damaged(error, segment_first_seq, resume_seq):
        log("replay_skipped_damage", level="critical", part="settlement",
            segment_first_seq=segment_first_seq, resume_seq=resume_seq, error=str(error))

    for rec in readable_records(plugin.journal, None if cursor is None else cursor + 1, damaged):
        last = rec.seq
        progress.record(rec.seq)
        if counts["transactions"] and counts["transactions"] % REPLAY_COMMIT_EVERY == 0 \
                and rec.type == record.TYPE_TRANSACTION and not unjournaled:
            plugin._checkpoint(rec.seq - 1)        # a long rebuild resumes from here if cut short
        try:
            if _replay_one(plugin, rec, counts, unjournaled):
                # A settlement's alert actions are committed right after its
                # type 2 record: any alert record after it means they made
                # it (the machine holds them).
                unjournaled = []
        except (DaozhangError, KeyError, TypeError) as exc:
            counts["mismatch"] += 1
            log("settlement_replay_skipped", level="warning", seq=rec.seq,
                error="%s: %s" % (type(exc).__name__, exc))
    if last is not None and not unjournaled:
        settlement_apply.save_cursor(index, plugin.settle_cursor)
        plugin._checkpoint(last)
    log("settlement_rebuilt", cursor=cursor, index=index.db.rebuilt or "reused",
        seconds="%.3f" % (time.monotonic() - t0), **counts)
    return unjournaled


def _replay_one(plugin, rec, counts, unjournaled):
    """One journal record into the watchdog or the machine; True for an alert record."""
    if rec.type == record.TYPE_TRANSACTION:
        txn = dict(rec.payload)
        txn["seq"] = rec.seq
        plugin.watchdog.handle(("transaction", txn))
        counts["transactions"] += 1
    elif rec.type == record.TYPE_SETTLEMENT_ACK:
        msg = cbor.loads(rec.payload["ack"])
        plugin.index.put_ack(msg["id"], ack_digest(rec.payload["ack"]), msg["at"])
        if isinstance(msg.get("n"), int):     # SPEC 7.8.7 (absent before v2)
            plugin.settle_cursor.done(msg["n"])
        outputs = plugin.watchdog.handle(("settlement", msg["row"], rec.wall_ms))
        unjournaled.extend(out for tag, out in outputs if tag == "alert")
        counts["settlements"] += 1
    elif rec.type == record.TYPE_CLOCK:
        plugin.watchdog.handle(("clock", rec.payload.get("event") == "trusted", rec.wall_ms))
        counts["clock"] += 1
    elif rec.type == record.TYPE_ALERT:
        plugin.machine.replay(rec.payload)
        counts["alerts"] += 1
        return True
    return False
