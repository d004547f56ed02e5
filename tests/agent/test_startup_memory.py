"""Daemon start-up on a journal backlog (bench/sync.py's agent_rss_mib_*):
the intake's idempotency index and the settlement watchdog's sale index live
in SQLite files beside the journal (docs/adr/0004-on-disk-sale-index.md).

Invariants: building them from a backlog leaves no per-sale Python memory
(4x the sales, about the same memory); a second start reuses them and reads
only the records after their cursor; a lost or foreign index is rebuilt
from the journal with the same answers.  The slim ledger gives exactly the
results of the whole-transaction ledger the reconcile tool uses.
"""

import os
import tracemalloc

from hypothesis import given, settings, strategies as st

from daozhang.agent.core.business_calendar import BusinessCalendar, FixedOffset
from daozhang.agent.core.journal import record
from daozhang.agent.core.settlement.settlement_checks import SettlementLedger
from daozhang.agent.core.settlement.watchdog import SettlementWatchdog
from daozhang.agent.index_db import index_path
from daozhang.agent.intake_service import IntakeService, Refused
from daozhang.agent.sale_index_sqlite import SqliteSaleIndex
from dztest.settlement import HOUR, local, make_row, make_txn, shanghai_profile
from dztest.sync import make_journal, txn_payload

PROFILE = shanghai_profile()
CAL = BusinessCalendar.from_profile(PROFILE, FixedOffset(8 * 3600))


def _backlog(tmp_path, sales):
    os.makedirs(str(tmp_path), exist_ok=True)
    path, journal = make_journal(tmp_path, size=16 << 20, segment_size=256 << 10)
    for i in range(0, sales, 200):
        journal.append_many([(record.TYPE_TRANSACTION, txn_payload(k)) for k in range(i, i + 200)])
    return path, journal


def _build_indexes(journal):
    """What the daemon's start does: the intake index, then the sale index."""
    service = IntakeService(journal)
    index = SqliteSaleIndex(index_path(journal, "watchdog"), journal)
    watchdog = SettlementWatchdog(PROFILE, CAL, index=index)
    for rec in journal.records():
        if rec.type == record.TYPE_TRANSACTION:
            txn = dict(rec.payload)
            txn["seq"] = rec.seq
            watchdog.handle(("transaction", txn))
    watchdog.handle(("tick", local(2026, 11, 26, 12)))     # the first prune
    index.checkpoint(journal.ring.next_seq - 1)
    return service, watchdog


def _python_memory_after_build(tmp_path, sales):
    path, journal = _backlog(tmp_path, sales)
    try:
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            service, watchdog = _build_indexes(journal)
            used = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        assert len(watchdog.index.unsettled_keys()) == sales
        assert service.index.get(txn_payload(sales - 1)["pos_txn_id"]) is not None
        return used
    finally:
        journal.close()


def test_building_the_indexes_leaves_no_per_sale_memory(tmp_path):
    small = _python_memory_after_build(tmp_path / "small", 1000)
    large = _python_memory_after_build(tmp_path / "large", 4000)
    # It was ~1,600 bytes per retained sale in memory; now the 3,000 more
    # sales may cost at most a few bytes each (SQLite's own cache is
    # bounded by its cache_size and not traced here).
    assert large - small < 3000 * 16, "%d bytes more for 3,000 more sales" % (large - small)


def test_a_second_start_reuses_the_intake_index_and_a_lost_one_is_rebuilt(tmp_path):
    path, journal = _backlog(tmp_path, 400)
    try:
        first = IntakeService(journal)
        assert first.index.cursor == journal.ring.next_seq - 1
        first.flush()
        first.index.close()
        again = IntakeService(journal)
        assert again.index.db.rebuilt is None          # reused, not rebuilt
        known = again.index.get(txn_payload(7)["pos_txn_id"])
        assert known is not None and known[1] > 0
        dup = again.submit(dict(txn_payload(7)))
        assert dup["duplicate"] and dup["seq"] == known[1]
        again.flush()
        again.index.close()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + ".intake.sqlite" + suffix):
                os.unlink(path + ".intake.sqlite" + suffix)
        cold = IntakeService(journal)
        assert cold.index.db.rebuilt == "new"
        assert cold.index.get(txn_payload(7)["pos_txn_id"]) == known
        changed = dict(txn_payload(7), amount=1)
        try:
            cold.submit(changed)
            raise AssertionError("a changed resubmission must be refused")
        except Refused as exc:
            assert exc.code == "conflict"
    finally:
        journal.close()


KINDS = st.sampled_from(["sale", "sale", "sale", "refund", "void", "preauth_completion"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(KINDS, st.integers(1, 5) ,st.booleans(), st.integers(-2, 2),
                          st.sampled_from(["debit", "credit"])), min_size=1, max_size=12),
       st.lists(st.tuples(st.integers(0, 11), st.booleans(), st.integers(-300, 300)), max_size=14))
def test_the_slim_ledger_answers_exactly_as_the_whole_one(txns, rows):
    """Same transactions and settlement rows into both: same results, same
    summary, same release state; a re-added transaction is a no-op in both."""
    made = []
    for n, (kind, amount, by_rrn, shift, card) in enumerate(txns, 1):
        extra = {}
        if kind == "void" and made:
            extra["original_pos_txn_id"] = made[-1]["pos_txn_id"]
        made.append(make_txn(n, kind, amount * 10000, "T1", card_type=card, **extra))
    full = SettlementLedger(PROFILE, CAL)
    slim = SettlementLedger(PROFILE, CAL, slim=True)
    for t in made:
        assert full.add_transaction(dict(t))["deadline"] == slim.add_transaction(dict(t))["deadline"]
    slim.add_transaction(dict(made[0]))
    for k, (index, by_rrn, fee_shift) in enumerate(rows):
        t = made[index % len(made)]
        r = make_row(t, "X%d" % k, local(2027, 1, 5, 22) + fee_shift * HOUR // 100)
        if not by_rrn:
            r["rrn"] = None
        r["fee"] += fee_shift
        assert full.add_settlement(dict(r)) == slim.add_settlement(dict(r))
    as_of = local(2027, 1, 9, 12)
    assert full.summary(as_of) == slim.summary(as_of)
    gone = [made[0]["pos_txn_id"]]
    full.forget(gone, as_of)
    slim.forget(gone, as_of)
    assert full.summary(as_of) == slim.summary(as_of)
