"""Daemon start-up memory on a journal backlog (bench/sync.py's
daemon_rss_mib_100k_backlog): the intake's idempotency index and the
settlement watchdog rebuilt from the journal, per retained sale.

Invariants: the slim watchdog ledger (agent/core/settlement_checks.py
slim=True) gives exactly the results of the whole-transaction ledger the
reconcile tool uses; per-sale memory of the rebuild stays under a bound
(it was ~3.3 KB per sale, tracemalloc, before the slim ledger, the packed
intake index and the prune that no longer copies every matcher list).
"""

import tracemalloc

from hypothesis import given, settings, strategies as st

from daozhang.agent.core import record
from daozhang.agent.core.business_calendar import BusinessCalendar, FixedOffset
from daozhang.agent.core.settlement_checks import SettlementLedger
from daozhang.agent.core.watchdog import SettlementWatchdog
from daozhang.agent.intake_service import IntakeService
from dztest.settlement import HOUR, local, make_row, make_txn, shanghai_profile
from dztest.sync import make_journal, txn_payload

PROFILE = shanghai_profile()
CAL = BusinessCalendar.from_profile(PROFILE, FixedOffset(8 * 3600))
SALES = 4000
BYTES_PER_SALE = 1600


def test_rebuild_memory_per_retained_sale_is_bounded(tmp_path):
    path, journal = make_journal(tmp_path, size=8 << 20, segment_size=256 << 10)
    try:
        for i in range(0, SALES, 200):
            journal.append_many([(record.TYPE_TRANSACTION, txn_payload(k)) for k in range(i, i + 200)])
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            service = IntakeService(journal)
            watchdog = SettlementWatchdog(PROFILE, CAL)
            for rec in journal.records():
                if rec.type == record.TYPE_TRANSACTION:
                    txn = dict(rec.payload)
                    txn["seq"] = rec.seq
                    watchdog.handle(("transaction", txn))
            watchdog.handle(("tick", local(2026, 11, 26, 12)))     # the first prune
            used = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        assert len(watchdog.unsettled) == SALES and len(service._index) == SALES
        assert used / SALES < BYTES_PER_SALE, "%.0f bytes per retained sale" % (used / SALES)
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
