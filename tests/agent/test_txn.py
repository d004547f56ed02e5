"""The transaction validator (agent/core/intake/txn.py, docs/SPEC.md §4)."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from daozhang.agent.core.errors import PaymentDataRefused, ValidationError
from daozhang.agent.core.intake import txn
from dztest.agent_daemon import sale
from dztest.micropython import run_micropython

PANS = ["4111111111111111", "5500005555555559", "378282246310005", "6011111111111117",
        "6225881234567891236"[:16] if txn.luhn_ok("6225881234567891") else "4012888888881881",
        "4222222222222", "6250941006528599"]
PANS = [p for p in PANS if txn.luhn_ok(p)]
SCHEME_PREFIXES = ["4", "51", "55", "2221", "2720", "62", "81", "34", "37", "3528", "3589",
                   "300", "305", "36", "38", "39", "6011", "644", "649", "65"]
FREE_TEXT = ("note", "operator", "pos_txn_id", "card_type", "terminal_id")


def with_field(field, value):
    obj = sale("T-1")
    obj[field] = value
    return obj


def refused(obj):
    with pytest.raises(PaymentDataRefused) as info:
        txn.validate(obj)
    return info.value


def invalid(obj):
    with pytest.raises(ValidationError) as info:
        txn.validate(obj)
    assert not isinstance(info.value, PaymentDataRefused)
    return info.value


def test_valid_sale_is_returned_canonical():
    out = txn.validate(sale("T-1", card="6225 88XX XXXX 1234"))
    assert out["card"] == "622588******1234"
    assert set(out) == set(sale("T-1"))


def test_luhn_valid_merchant_number_is_not_a_pan():
    mid = next("10229005812%04d" % i for i in range(10000) if txn.luhn_ok("10229005812%04d" % i))
    assert txn.luhn_ok(mid) and len(mid) == 15
    assert txn.validate(sale("T-1", merchant_id=mid))["merchant_id"] == mid


@pytest.mark.parametrize("pan", PANS)
def test_full_pan_in_card_refused_without_its_digits(pan):
    exc = refused(sale("T-1", card=pan))
    assert exc.code == "pan_refused" and exc.field == "card"
    assert pan not in str(exc) and pan[-8:] not in str(exc)


@pytest.mark.parametrize("field", FREE_TEXT)
@pytest.mark.parametrize("form", ["{}", "pay {} now", "{} 123"])
def test_full_pan_in_any_free_text_field_refused(field, form):
    pan = "4111111111111111"
    spaced = " ".join(pan[i:i + 4] for i in range(0, 16, 4))
    dashed = "-".join(pan[i:i + 4] for i in range(0, 16, 4))
    for shown in (pan, spaced, dashed):
        exc = refused(with_field(field, form.format(shown)))
        assert exc.code == "pan_refused" and exc.field == field
        assert "4111" not in str(exc)


def test_pan_in_unknown_field_refused_as_pan_not_unknown():
    assert refused(sale("T-1", memo="4111111111111111")).code == "pan_refused"
    assert refused(sale("T-1", extra={"deep": ["x", "4111 1111 1111 1111"]})).code == "pan_refused"
    assert refused(sale("T-1", pan="622588******1234")).code == "pan_refused"


def test_pan_as_a_key_is_not_echoed_as_the_field_name():
    for obj in (sale("T-1", **{"4111111111111111": 1}), sale("T-1", x={"4111 1111 1111 1111": 1})):
        exc = refused(obj)
        assert exc.code == "pan_refused" and "4111" not in exc.field and "4111" not in str(exc)


@pytest.mark.parametrize("obj,code", [
    (sale("T-1", cvv="123"), "cvv_refused"),
    (sale("T-1", CVC2=123), "cvv_refused"),
    (sale("T-1", note="cvv: 123"), "cvv_refused"),
    (sale("T-1", note="CVC2 4567"), "cvv_refused"),
    (sale("T-1", track2="x"), "track_refused"),
    (sale("T-1", note="%B4111111111111111^DOE/JOHN^2512101000000000"), "track_refused"),
    (sale("T-1", note=";4111111111111111=25121010000000?"), "track_refused"),
    (sale("T-1", note="4111111111111111D25121010000000"), "track_refused"),
    (sale("T-1", card="622588123456781234"), "pan_refused"),
    (sale("T-1", card="6225881234****1234"), "card_not_masked"),
])
def test_payment_data_refused_with_code(obj, code):
    assert refused(obj).code == code


@pytest.mark.parametrize("change,field,code", [
    ({"amount": 0}, "amount", "bad_amount"),
    ({"amount": -5}, "amount", "bad_amount"),
    ({"amount": 12.5}, "amount", "wrong_type"),
    ({"amount": "1250"}, "amount", "wrong_type"),
    ({"amount": True}, "amount", "wrong_type"),
    ({"currency": "XYZ"}, "currency", "unknown_currency"),
    ({"currency": "cny"}, "currency", "unknown_currency"),
    ({"mcc": "581"}, "mcc", "bad_mcc"),
    ({"mcc": 5812}, "mcc", "wrong_type"),
    ({"merchant_id": "12345"}, "merchant_id", "bad_merchant_id"),
    ({"kind": "refundx"}, "kind", "bad_kind"),
    ({"time": "2026-11-26T09:30:00"}, "time", "bad_time"),
    ({"time": "2026-02-30T09:30:00+08:00"}, "time", "bad_time"),
    ({"settlement": "T0"}, "settlement", "bad_settlement"),
    ({"rrn": "12"}, "rrn", "bad_rrn"),
    ({"auth_code": "ABC"}, "auth_code", "bad_auth_code"),
    ({"colour": "red"}, "colour", "unknown_field"),
    ({"original_pos_txn_id": "T-0"}, "original_pos_txn_id", "original_forbidden"),
    ({"note": "x" * 300}, "note", "too_long"),
])
def test_field_errors_name_the_field(change, field, code):
    exc = invalid(sale("T-1", **change))
    assert (exc.field, exc.code) == (field, code)


def test_missing_fields_and_originals():
    obj = sale("T-1")
    del obj["currency"]
    assert (invalid(obj).field, invalid(obj).code) == ("currency", "missing_field")
    refund = sale("R-1", kind="refund")
    assert invalid(refund).code == "missing_field"
    assert invalid(refund).field == "original_pos_txn_id"
    refund["original_pos_txn_id"] = "T-1"
    assert txn.validate(refund)["original_pos_txn_id"] == "T-1"
    assert invalid([1, 2]).code == "not_an_object"


# -- properties ------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(txn.FIELDS) + ["x", "cvv"]), json_values, max_size=16))
def test_fuzz_validator_raises_only_its_own_errors(obj):
    """Invariant: validate returns a dict of known fields or raises ValidationError."""
    try:
        out = txn.validate(obj)
    except ValidationError as exc:
        assert isinstance(exc.code, str) and exc.code
        return
    assert set(out) <= set(txn.FIELDS)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FREE_TEXT), st.text(max_size=20), st.text(max_size=20),
       st.sampled_from(SCHEME_PREFIXES),
       st.integers(13, 19).flatmap(lambda n: st.text("0123456789", min_size=n - 5, max_size=n - 5)))
def test_any_card_number_in_free_text_is_refused(field, before, after, prefix, rest):
    """Invariant: a 13-19 digit run with a scheme prefix and a valid Luhn in
    free text never validates (prefix padded to 4 digits: n digits in all)."""
    body = (prefix + "0000")[:4] + rest
    check = next(d for d in "0123456789" if txn.luhn_ok(body + d))
    pan = body + check
    obj = with_field(field, before + " " + pan + " " + after)
    with pytest.raises(ValidationError) as info:
        txn.validate(obj)
    assert pan not in str(info.value)


@settings(max_examples=300, deadline=None)
@given(st.text("0123456789", min_size=6, max_size=6), st.text("0123456789", min_size=4, max_size=4),
       st.integers(3, 9), st.sampled_from("*Xx"))
def test_masked_cards_accepted(first6, last4, hidden, mask):
    card = first6 + mask * hidden + last4
    assert txn.validate(sale("T-1", card=card))["card"] == first6 + "*" * hidden + last4


# -- the CPython pre-filter ----------------------------------------------------------

# Pieces that come near every scanner rule: digits and the separators that
# chain them, track sentinels and separators, CVV words in both cases, and
# non-ASCII letters that case-fold onto ASCII ones.
_NEAR_MISS = ["0", "1", "4", "9", " ", "-", "--", "^", "%", "%B", "%b", "B", "D", "d", "=", ":",
              "#", "?", "*", "X", "x", "\n", "4111111111111111", "411111111111", "4111 1111",
              "cvv", "CVV2", "cvc", "Cvc2", "cav2", "csc", "cid", "CID", "security code",
              "SECURITY CODE", "i", "\u0130", "\u017f", "\u212a", "a", "Z", "T", "+08:00"]
tricky_text = st.lists(st.sampled_from(_NEAR_MISS), max_size=14).map("".join)


def _exact(obj):
    """validate() with the pre-filter off: the portable scanners decide alone."""
    saved = txn._chain13
    txn._chain13 = None
    try:
        return _cpython(obj)
    finally:
        txn._chain13 = saved


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.sampled_from(FREE_TEXT + ("card", "time", "kind", "settlement")),
                       tricky_text, max_size=4))
def test_prefilter_never_hides_what_the_scanners_refuse(changes):
    """Invariant: when the pre-filter calls a transaction clean, the exact scan
    raises nothing; and validate() answers exactly as with the pre-filter off."""
    obj = sale("T-1")
    obj.update(changes)
    if txn._surely_clean(obj):
        txn._refuse_payment_fields(obj)
    assert _cpython(obj) == _exact(obj)


def test_prefilter_is_active_on_an_ordinary_sale():
    # Not a timing test: it checks the fast path is taken at all.
    assert txn._chain13 is not None and txn._surely_clean(sale("T-1"))
    assert not txn._surely_clean(sale("T-1", note="4111 1111 1111 1111"))
    assert not txn._surely_clean(sale("T-1", memo="x"))          # unknown field: scan exactly


# -- MicroPython parity ------------------------------------------------------------

CASES = [sale("T-1"), sale("T-2", card="4111111111111111"), sale("T-3", note="4111 1111 1111 1111"),
         sale("T-4", cvv="123"), sale("T-5", note=";4111111111111111=2512101?"),
         sale("T-6", amount=0), sale("T-7", currency="ABC"), sale("T-8", mcc="12"),
         sale("R-1", kind="refund", original_pos_txn_id="T-1"), sale("T-9", x=1),
         sale("T-10", time="2024-02-29T23:59:60.123Z"), sale("T-11", card="6225881234****1234"),
         sale("T-12", note="ok 12345"), {"kind": "sale"}, []]


def _cpython(obj):
    try:
        return ["ok", txn.validate(obj)]
    except ValidationError as exc:
        return [type(exc).__name__, exc.code, exc.field, str(exc)]


def test_micropython_gives_the_same_results():
    code = ("import json\nfrom daozhang.agent.core.intake import txn\n"
            "from daozhang.agent.core.errors import ValidationError\n"
            "cases = json.loads(%r)\n"
            "for obj in cases:\n"
            "    try:\n"
            "        print(json.dumps(['ok', txn.validate(obj)]))\n"
            "    except ValidationError as exc:\n"
            "        print(json.dumps([type(exc).__name__, exc.code, exc.field, str(exc)]))\n"
            % json.dumps(CASES))
    lines = run_micropython(code).strip().splitlines()
    got = [json.loads(line) for line in lines]
    assert got == [json.loads(json.dumps(_cpython(c))) for c in CASES]
