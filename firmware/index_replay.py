"""The board's settlement watchdog and alert machine at boot: the sale
index on flash (firmware/sale_index_flash.py) as of the index's cursor,
then the journal records after it (an index started empty, new or cut
while dirty, gets the whole journal still on the board); the alert store
(firmware/alert_store_flash.py, wiped at boot) from every alert record
still on the board.

    counts = catch_up(watchdog, journal)      # then index.checkpoint(...) done
    counts = restore_alerts(machine, journal)

Transactions and settlement acks (type 2: the backend's signed row inside;
its id joins the index's replay guard) go into the watchdog, its outputs dropped: the checks it recomputes equal
the journaled ones, and the first tick observes every overdue sale again
(a no-op for an alert restore_alerts brought back firing).
A record the watchdog refuses is counted and skipped (the Linux agent's
agent/settlement_rebuild.py does the same).  One batch of frames on the
heap at a time.  Portable: CPython and MicroPython.
"""

import hashlib

from daozhang.agent.core import cbor
from daozhang.agent.core.errors import DaozhangError
from daozhang.agent.core.journal import record
from daozhang.firmware.journal_frames import FrameReader

BATCH_BYTES = 8192


def _frames(journal, start, types):
    """(type, frame) of each record from `start` (or the oldest kept) whose
    type is in `types`, one batch of frames on the heap at a time."""
    ring = journal.ring
    firsts = [s for s in ring.first_seqs if s is not None]
    if firsts:
        start = max(start, min(firsts))           # older records were reclaimed
    reader = FrameReader(journal.storage, ring)
    seq = start
    while seq < ring.next_seq:
        records, end, _ = reader.read(seq, BATCH_BYTES)
        if not records:
            break
        for _, rtype, frame in records:
            if rtype in types:
                yield rtype, frame
        seq = end


def catch_up(watchdog, journal):
    index = watchdog.index
    counts = {"transactions": 0, "settlements": 0, "skipped": 0}
    start = 0 if index.cursor is None else index.cursor + 1
    for _, frame in _frames(journal, start, (record.TYPE_TRANSACTION, record.TYPE_SETTLEMENT_ACK)):
        try:
            _replay(watchdog, record.decode_at(frame, 0), counts)
        except (DaozhangError, KeyError, TypeError):
            counts["skipped"] += 1
    index.checkpoint(journal.ring.next_seq - 1)
    return counts


def restore_alerts(machine, journal):
    """The alert machine's records from the journal's alert records (every
    one still on the board, oldest first), into its store wiped at boot: an
    alert firing before the reset is firing again before the first tick,
    whose re-observation of every overdue sale is then a no-op, so a reset
    journals and publishes no alert a second time.  Returns
    {"alerts", "skipped"}."""
    counts = {"alerts": 0, "skipped": 0}
    for _, frame in _frames(journal, 0, (record.TYPE_ALERT,)):
        try:
            machine.replay(record.decode_at(frame, 0).payload)
            counts["alerts"] += 1
        except (DaozhangError, KeyError, TypeError):
            counts["skipped"] += 1
    return counts


def _replay(watchdog, rec, counts):
    if rec.type == record.TYPE_TRANSACTION:
        txn = dict(rec.payload)
        txn["seq"] = rec.seq
        watchdog.handle(("transaction", txn))
        counts["transactions"] += 1
    else:
        ack = bytes(rec.payload["ack"])
        msg = cbor.loads(ack)
        if hasattr(watchdog.index, "put_ack"):     # the replay guard (firmware/settlement_acks.py)
            watchdog.index.put_ack(msg["id"], hashlib.sha256(ack).digest(), msg["at"])
        watchdog.handle(("settlement", msg["row"], rec.wall_ms))
        counts["settlements"] += 1
