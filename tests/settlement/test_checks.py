"""Fees, the matcher and every settlement check, at their edges."""

from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

from daozhang.agent.core.business_calendar import BusinessCalendar, FixedOffset
from daozhang.agent.core.errors import DaozhangError, ValidationError
from daozhang.agent.core.settlement.fees import contracted_fee, rate_fee
from daozhang.agent.core.settlement.settlement_checks import SettlementLedger, reconcile
from dztest.settlement import HOUR, MINUTE, local, make_row, make_txn, shanghai_profile

CST = 8 * 3600
PROFILE = shanghai_profile()
CAL = BusinessCalendar.from_profile(PROFILE, FixedOffset(CST))
MONDAY = local(2027, 1, 4, 10)
DEADLINE = local(2027, 1, 5, 23)  # T1 of a Monday-morning sale


def txn(n, kind="sale", amount=100000, mode="T1", when=MONDAY, card_type="debit", **more):
    return make_txn(n, kind, amount, mode, when, card_type, **more)


def row(t, ref="X1", settled_at=DEADLINE - HOUR, fee=None, settled=None, **more):
    return make_row(t, ref, settled_at, fee, settled, PROFILE, **more)


def check(t, r, *others):
    ledger = SettlementLedger(PROFILE, CAL)
    for o in others:
        ledger.add_transaction(o)
    ledger.add_transaction(t)
    return ledger.add_settlement(r)["checks"]


# -- fees -------------------------------------------------------------------------

def test_fee_rounds_half_up_and_caps():
    assert rate_fee(1000, 55) == 6      # 5.5 -> 6
    assert rate_fee(909, 55) == 5       # 4.9995 -> 5
    assert rate_fee(818, 55) == 4       # 4.499 -> 4
    fees = PROFILE["fees"]
    assert contracted_fee(10_000_000, "debit", fees, False) == 2000  # capped at ¥20
    assert contracted_fee(10_000_000, "credit", fees, False) == 60000
    assert contracted_fee(10000, "debit", fees, True) == 55 + 200
    assert contracted_fee(10000, "amex", fees, False) is None


@given(st.integers(0, 10 ** 12), st.integers(0, 10000), st.none() | st.integers(0, 10 ** 6),
       st.booleans(), st.integers(0, 1000))
def test_fee_matches_exact_rational_reference(amount, bp, cap, d0, surcharge):
    fees = {"tolerance": 0, "d0_surcharge": surcharge, "card_types": {"x": {"bp": bp, "cap": cap}}}
    exact = Fraction(amount * bp, 10000)
    want = int(exact + Fraction(1, 2))  # half up, non-negative
    if cap is not None:
        want = min(want, cap)
    assert contracted_fee(amount, "x", fees, d0) == want + (surcharge if d0 else 0)


# -- checks -----------------------------------------------------------------------

def test_clean_settlement_has_no_findings():
    t = txn(1)
    assert check(t, row(t)) == []


def test_late_is_strictly_after_the_deadline():
    t = txn(1)
    assert check(t, row(t, settled_at=DEADLINE)) == []
    assert check(t, row(t, settled_at=DEADLINE + 1)) == ["late"]  # one ms


def test_short_beyond_tolerance_only():
    t = txn(1)
    fee = 550
    assert check(t, row(t, fee=fee, settled=100000 - fee - 1)) == []  # tolerance 1
    assert check(t, row(t, fee=fee, settled=100000 - fee - 2)) == ["short"]


def test_over_fee_beyond_tolerance_only():
    t = txn(1)
    assert check(t, row(t, fee=551)) == []
    assert check(t, row(t, fee=552)) == ["over_fee"]


def test_d0_surcharge_on_a_sale_that_did_not_settle_d0_is_over_fee():
    t = txn(1, mode="D0")
    in_time = MONDAY + HOUR
    assert check(t, row(t, settled_at=in_time, fee=550 + 200)) == []
    # settled after the D0 window: late, and the surcharge is not owed
    assert check(t, row(t, settled_at=MONDAY + 3 * HOUR, fee=550 + 200)) == ["late", "over_fee"]
    # a T1 sale charged the D0 surcharge
    t1 = txn(2)
    assert check(t1, row(t1, fee=550 + 200)) == ["over_fee"]


def test_code_jumps_from_columns_or_merchant_number():
    t = txn(1)
    assert check(t, row(t, mcc=5411)) == ["mcc_jump"]
    assert check(t, row(t, region="5810")) == ["region_jump"]
    # columns empty: the digits of the merchant number tell
    assert check(t, row(t, mcc=None, region=None, merchant_id="102581054110001")) == [
        "mcc_jump", "region_jump"]


def test_refund_expects_a_negative_settlement():
    sale = txn(1)
    refund = txn(2, kind="refund", amount=40000, original_pos_txn_id="P1")
    assert check(refund, row(refund), sale) == []
    assert check(refund, row(refund, settled=-40000 - 500), sale) == ["short"]
    # a refund row never matches the sale with the same auth code and amount
    ledger = SettlementLedger(PROFILE, CAL)
    ledger.add_transaction(sale)
    r = row(txn(1, kind="refund"), rrn="")
    assert ledger.add_settlement(r)["checks"] == ["unknown_settlement"]


def test_voided_sale_expects_no_settlement():
    sale = txn(1)
    void = txn(2, kind="void", original_pos_txn_id="P1", when=MONDAY + 120)
    ledger = SettlementLedger(PROFILE, CAL)
    ledger.add_transaction(sale)
    ledger.add_transaction(void)
    assert ledger.add_settlement(row(sale))["checks"] == ["cancelled_settled"]
    assert ledger.add_settlement(row(void, ref="X2"))["checks"] == ["cancelled_settled"]
    summary = ledger.summary(DEADLINE + 24 * HOUR)
    assert summary["other_counts"]["cancelled_settled"] == 2
    assert summary["counts"]["not_arrived"] == 0


def test_duplicate_and_redelivery():
    t = txn(1)
    ledger = SettlementLedger(PROFILE, CAL)
    ledger.add_transaction(t)
    first = ledger.add_settlement(row(t, ref="X1"))
    assert ledger.add_settlement(row(t, ref="X1")) is first  # same ack again: nothing new
    assert ledger.add_settlement(row(t, ref="X2"))["checks"] == ["duplicate_settlement"]
    assert ledger.entries["P1"]["settlements"] == ["X1", "X2"]


def test_match_falls_back_to_auth_code_amount_and_window():
    t = txn(1)
    ledger = SettlementLedger(PROFILE, CAL)
    ledger.add_transaction(t)
    near = row(t, ref="X1", rrn="", txn_time=MONDAY + 15 * MINUTE)
    assert ledger.add_settlement(near)["pos_txn_id"] == "P1"
    far = row(t, ref="X2", rrn="", txn_time=MONDAY + 15 * MINUTE + 1)
    assert ledger.add_settlement(far)["checks"] == ["unknown_settlement"]


def test_not_arrived_only_after_the_deadline():
    ledger = SettlementLedger(PROFILE, CAL)
    ledger.add_transaction(txn(1))
    assert ledger.status("P1", DEADLINE)["status"] == "pending"
    st_ = ledger.status("P1", DEADLINE + 1)
    assert (st_["status"], st_["checks"]) == ("problem", ["not_arrived"])


def test_reconcile_counts_and_totals():
    a, b, c = txn(1, amount=100000), txn(2, amount=20000), txn(3, amount=5000)
    refund = txn(4, kind="refund", amount=1000, original_pos_txn_id="P1")
    rows = [row(a, "X1"), row(b, "X2", settled=20000 - 110 - 500), row(refund, "X4"),
            {"acquirer_ref": "U1", "rrn": "nope", "amount": 7, "fee": 0, "settled_amount": 7,
             "settled_at": DEADLINE, "txn_time": None, "mcc": 5812, "region": 2900}]
    out = reconcile(PROFILE, CAL, [a, b, c, refund], rows, DEADLINE + MINUTE)
    assert out["counts"] == {"ok": 2, "not_arrived": 1, "late": 0, "short": 1, "over_fee": 0,
                             "mcc_jump": 0, "region_jump": 0, "unknown_settlement": 1,
                             "duplicate_settlement": 0}
    fees = 550 + 110 + 28
    assert out["totals"] == {"gross": 125000 - 1000, "expected_net": 125000 - 1000 - fees,
                             "settled": (100000 - 550) + (20000 - 110 - 500) - 1000,
                             "missing": 500 + (5000 - 28)}


# -- outside data ---------------------------------------------------------------------

def test_bad_rows_raise_validation_errors():
    ledger = SettlementLedger(PROFILE, CAL)
    t = txn(1)
    ledger.add_transaction(t)
    with pytest.raises(ValidationError, match="acquirer_ref"):
        ledger.add_settlement(dict(row(t), acquirer_ref=""))
    with pytest.raises(ValidationError, match="fee"):
        ledger.add_settlement(dict(row(t), fee="5"))
    with pytest.raises(ValidationError, match="kind"):
        ledger.add_transaction(txn(2, kind="chargeback"))
    assert ledger.entries["P1"]["settlements"] == []


values = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 6, 10 ** 6), st.text(max_size=6),
                   st.lists(st.integers(), max_size=2))
row_keys = ["acquirer_ref", "merchant_id", "terminal_id", "rrn", "auth_code", "txn_time", "kind",
            "amount", "fee", "settled_amount", "settled_at", "mcc", "region"]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(row_keys), values), st.booleans())
def test_arbitrary_rows_check_or_raise_our_error(junk, based):
    """Invariant: any row dict is checked or refused with a DaozhangError."""
    t = txn(1)
    ledger = SettlementLedger(PROFILE, CAL)
    ledger.add_transaction(t)
    r = dict(row(t), **junk) if based else junk
    try:
        result = ledger.add_settlement(r)
    except DaozhangError:
        return
    assert set(result["checks"]) <= {"late", "short", "over_fee", "mcc_jump", "region_jump",
                                     "unknown_settlement"}
