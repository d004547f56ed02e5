"""The board's settlement watchdog at boot: its sale index on flash
(firmware/sale_index_flash.py) as of the index's cursor, then the journal
records after it; an index started empty (new, or cut while dirty) gets
the whole journal still on the board.

    counts = catch_up(watchdog, journal)      # then index.checkpoint(...) done

Transactions and settlement acks (type 2: the backend's signed row inside;
its id joins the index's replay guard) go into the watchdog, its outputs dropped: the checks it recomputes equal
the journaled ones, and the first tick observes every overdue sale again.
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


def catch_up(watchdog, journal):
    index = watchdog.index
    ring = journal.ring
    firsts = [s for s in ring.first_seqs if s is not None]
    start = 0 if index.cursor is None else index.cursor + 1
    if firsts:
        start = max(start, min(firsts))           # older records were reclaimed
    counts = {"transactions": 0, "settlements": 0, "skipped": 0}
    reader = FrameReader(journal.storage, ring)
    seq = start
    while seq < ring.next_seq:
        records, end, _ = reader.read(seq, BATCH_BYTES)
        if not records:
            break
        for rseq, rtype, frame in records:
            if rtype == record.TYPE_TRANSACTION or rtype == record.TYPE_SETTLEMENT_ACK:
                try:
                    _replay(watchdog, record.decode_at(frame, 0), counts)
                except (DaozhangError, KeyError, TypeError):
                    counts["skipped"] += 1
        seq = end
    index.checkpoint(ring.next_seq - 1)
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
