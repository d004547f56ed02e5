"""The one card-data rule (agent/core/card_data.py, docs/SPEC.md §4.4), both
directions: every form issue 12 found accepted is refused, and real-shaped
order numbers, merchant ids and RRNs pass."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from daozhang.agent.core import card_data, cbor
from daozhang.agent.core.errors import PaymentDataRefused, ValidationError
from daozhang.agent.core.intake import txn
from dztest.agent_daemon import sale
from dztest.micropython import run_micropython

UNIONPAY = "6222021234567894"          # Luhn-valid, UnionPay prefix 62
VISA = "4111111111111111"
FULLWIDTH = "".join(chr(0xFF10 + int(c)) for c in UNIONPAY)


def with_check_digit(body):
    return body + next(d for d in "0123456789" if card_data.luhn_ok(body + d))


# One Luhn-valid 16-digit number per scheme prefix (ISO/IEC 7812 ranges).
SCHEME_SAMPLES = [with_check_digit((p + "000000000000000")[:15]) for p in (
    "4", "51", "55", "2221", "2720", "62", "81", "34", "37", "3528", "3589",
    "300", "305", "36", "38", "39", "6011", "644", "649", "65")]

# (field, value, the field named in the error): every one must be pan_refused.
REFUSED = [
    ("pos_txn_id", "T.6222.0212.3456.7894", "pos_txn_id"),
    ("pos_txn_id", "T_6222_0212_3456_7894", "pos_txn_id"),
    ("pos_txn_id", "T:6222:0212:3456:7894", "pos_txn_id"),
    ("pos_txn_id", "T62220212345678941", "pos_txn_id"),          # one digit appended
    ("pos_txn_id", "4111111111111111123", "pos_txn_id"),         # CVV appended
    ("pos_txn_id", "4200001234202612031234567890-" + VISA, "pos_txn_id"),
    ("original_pos_txn_id", "R-" + UNIONPAY, "original_pos_txn_id"),
    ("note", "paid 6222/0212/3456/7894 ok", "note"),
    ("note", "6222  0212  3456  7894", "note"),                  # double spaces
    ("note", "6222\u00a00212\u00a03456\u00a07894", "note"),      # NBSP
    ("note", FULLWIDTH, "note"),                                 # full-width digits
    ("note", "\u3000".join(FULLWIDTH[i:i + 4] for i in range(0, 16, 4)), "note"),
    ("note", "order 20261203153045123456 " + VISA, "note"),
    ("note", "x" + "9" * 3 + VISA + "99", "note"),              # free text: any window
    ("operator", "6222-0212.3456_7894", "operator"),
    ("card_type", "x6222_0212_3456_7894", "card_type"),
    ("terminal_id", "6222021234567894", "terminal_id"),
] + [("note", pan, "note") for pan in SCHEME_SAMPLES]


@pytest.mark.parametrize("field,value,named", REFUSED)
def test_every_form_of_a_card_number_is_refused(field, value, named):
    obj = sale("T-1", kind="refund", original_pos_txn_id="S-1") if field == "original_pos_txn_id" \
        else sale("T-1")
    obj[field] = value
    with pytest.raises(PaymentDataRefused) as info:
        txn.validate(obj)
    assert (info.value.code, info.value.field) == ("pan_refused", named)
    assert "6222" not in str(info.value) and "1111" not in str(info.value)


@pytest.mark.parametrize("first,second", [("note", "operator"), ("operator", "note")])
def test_a_card_number_split_across_two_fields_is_refused(first, second):
    obj = sale("T-1", **{first: "card 6222 0212", second: "3456 7894 thanks"})
    with pytest.raises(PaymentDataRefused) as info:
        txn.validate(obj)
    assert (info.value.code, info.value.field) == ("pan_refused", first + "+" + second)


def test_the_split_rule_joins_only_digits_touching_the_field_edges():
    # "end" closes the note: its digits and the operator's are not one number.
    obj = sale("T-1", note="card 6222 0212 end", operator="3456 7894")
    assert txn.validate(obj)["operator"] == "3456 7894"


# (field, value): real-shaped identifiers and text that must pass.
ACCEPTED = [
    ("pos_txn_id", "4200001234202612031234567890"),      # WeChat Pay, 28 digits
    ("pos_txn_id", "2026120322001412341234567890"),      # Alipay, 28 digits
    ("pos_txn_id", "20261203153045123456"),              # timestamp + serial, 20 digits
    ("pos_txn_id", "202612031530451234567"),             # 21 digits
    ("pos_txn_id", "ORD-20261203-0001"),                 # 12 chained digits: too few
    ("pos_txn_id", "POS-000123"),
    ("pos_txn_id", "SH000001-000042"),
    ("pos_txn_id", "1" * 18),                            # no scheme prefix
    ("pos_txn_id", "9" + VISA[1:]),                      # no scheme prefix
    ("pos_txn_id", VISA[:-1] + "2"),                     # Luhn fails
    ("rrn", "612345678901"),
    ("rrn", "123456789012"),
    ("merchant_id", "102290058120001"),
    ("merchant_id", with_check_digit("37229005812000")),  # exempt: strict 15-digit format
    ("note", "call 13812345678, table 12"),
    ("note", "2026-12-03 15:30"),
    ("note", "\uff11\uff12\uff13 yuan"),
    ("operator", "cashier 07"),
    ("terminal_id", "SH000001"),
]


@pytest.mark.parametrize("field,value", ACCEPTED)
def test_real_shaped_identifiers_and_text_pass(field, value):
    obj = sale("T-1")
    obj[field] = value
    assert txn.validate(obj)[field] == value


def test_a_long_run_is_an_identifier_only_in_identifier_fields():
    assert card_data.find_card_number("4200001234202612031234567890", identifier=True) is None
    assert card_data.find_card_number("4200001234202612031234567890") is not None
    with pytest.raises(PaymentDataRefused):
        txn.validate(sale("T-1", note="4200001234202612031234567890"))


# -- masking (settlement input) ---------------------------------------------------

@pytest.mark.parametrize("text,masked,count", [
    ("6222 0212 3456 7894", "6222 02** **** 7894", 1),
    ("rrn=6222.0212.3456.7894;ref=" + VISA, "rrn=6222.02**.****.7894;ref=411111******1111", 2),
    (FULLWIDTH, FULLWIDTH[:6] + "******" + FULLWIDTH[12:], 1),
    ("no card here 12345", "no card here 12345", 0),
    ("4200001234202612031234567890", "42000012342026*******4567890", 1),
])
def test_mask_card_numbers_keeps_first6_last4(text, masked, count):
    assert card_data.mask_card_numbers(text) == (masked, count)


def test_mask_in_identifier_mode_keeps_long_runs():
    assert card_data.mask_card_numbers("4200001234202612031234567890", identifier=True) == \
        ("4200001234202612031234567890", 0)


digits_and_separators = st.text(alphabet="0123456789 -._:/\u00a0x\uff14\uff11", max_size=80)


@settings(max_examples=500, deadline=None)
@given(st.one_of(digits_and_separators,
                 st.lists(st.sampled_from(SCHEME_SAMPLES + [" ", "-", "7", "x", "12"]),
                          max_size=8).map("".join)),
       st.booleans())
def test_masked_text_holds_no_card_number(text, identifier):
    """Invariant: mask's output is clean by the same rule, the same length,
    and differs from the input only where a digit became '*'."""
    masked, count = card_data.mask_card_numbers(text, identifier)
    assert card_data.find_card_number(masked, identifier) is None
    assert len(masked) == len(text)
    assert (count == 0) == (masked == text)
    for a, b in zip(text, masked):
        assert a == b or (b == "*" and card_data.digit_value(a) >= 0)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789", min_size=13, max_size=19))
def test_window_scan_agrees_with_the_plain_definition(digits):
    """Invariant: the prefix-sum scan finds a card number in a bare digit run
    exactly when some 13-19 window has a prefix and passes Luhn."""
    d = [int(c) for c in digits]
    plain = any(card_data.scheme_prefix(d, p) and card_data.luhn_ok(digits[p:e])
                for p in range(len(d)) for e in range(p + 13, min(p + 19, len(d)) + 1))
    assert (card_data.find_card_number(digits) is not None) == plain


# -- no accepted transaction stores a card number ----------------------------------

_PIECES = SCHEME_SAMPLES[:6] + [UNIONPAY[:8], UNIONPAY[8:], FULLWIDTH[:8], "4111", "1111",
                                 " ", "-", ".", "_", ":", "/", "\u00a0", "x", "T", "9", "0"]
tricky = st.lists(st.sampled_from(_PIECES), max_size=10).map("".join)


def _stored_strings(payload):
    stored = cbor.loads(cbor.dumps(payload))
    return [(k, v) for k, v in stored.items() if isinstance(v, str)]


@settings(max_examples=600, deadline=None)
@given(st.fixed_dictionaries({}, optional={"note": tricky, "operator": tricky,
                                           "pos_txn_id": tricky, "card_type": tricky}))
def test_no_accepted_transaction_stores_a_card_number(changes):
    """Invariant: what validate accepts, once encoded as it is journaled,
    holds no card number in any field, nor across two scanned fields."""
    obj = sale("T-1")
    obj.update(changes)
    try:
        payload = txn.validate(obj)
    except ValidationError:
        return
    strings = _stored_strings(payload)
    for key, value in strings:
        if key not in txn._IDENTIFIERS:
            assert card_data.find_card_number(value, key in txn._ID_FIELDS) is None, key
    free = [v for k, v in strings if k in ("note", "operator", "card_type", "terminal_id")]
    for a in free:
        for b in free:
            if a is not b:
                assert card_data.find_card_number(a + b) is None


# -- MicroPython runs the same rule ----------------------------------------------

MP_CASES = [r[1] for r in REFUSED] + [a[1] for a in ACCEPTED] + ["", "4", VISA + "\n" + VISA]


def test_micropython_agrees():
    code = ("import json\nfrom daozhang.agent.core import card_data as c\n"
            "for t in json.loads(%r):\n"
            "    print(json.dumps([c.find_card_number(t), c.find_card_number(t, True),"
            " c.mask_card_numbers(t), c.edge_digits(t), c.card_data_code(t)]))\n"
            % json.dumps(MP_CASES))
    got = [json.loads(line) for line in run_micropython(code).strip().splitlines()]
    want = [json.loads(json.dumps([card_data.find_card_number(t),
                                   card_data.find_card_number(t, True),
                                   card_data.mask_card_numbers(t), card_data.edge_digits(t),
                                   card_data.card_data_code(t)])) for t in MP_CASES]
    assert got == want
