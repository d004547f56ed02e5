"""Deterministic CBOR (SPEC 2).

Invariants: dumps/loads round-trip every value we support; our bytes equal
cbor2's canonical encoding; loads rejects every non-canonical input and any
arbitrary bytes either decode to a value that re-encodes to the same bytes
or raise DecodeError, never anything else.
"""

import json
import os

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daozhang.agent.core import cbor
from daozhang.agent.core.errors import DecodeError, LocalError

VECTORS = json.load(open(os.path.join(os.path.dirname(__file__), "..", "vectors", "cbor.json"), encoding="utf-8"))


def from_json(value):
    if isinstance(value, dict) and set(value) == {"$bytes"}:
        return bytes.fromhex(value["$bytes"])
    if isinstance(value, dict):
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["cbor"])
def test_valid_vectors(case):
    value = from_json(case["value"])
    assert cbor.dumps(value).hex() == case["cbor"]
    assert cbor.loads(bytes.fromhex(case["cbor"])) == value


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["why"])
def test_invalid_vectors(case):
    with pytest.raises(DecodeError):
        cbor.loads(bytes.fromhex(case["cbor"]))


keys = st.one_of(st.text(max_size=8), st.integers(-1000, 1000))
values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 64), 2 ** 64 - 1), st.binary(max_size=40),
              st.text(max_size=20)),
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=5)),
    max_leaves=25)


text_keyed = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 64), 2 ** 64 - 1), st.binary(max_size=40),
              st.text(max_size=20)),
    lambda children: st.one_of(st.lists(children, max_size=5),
                               st.dictionaries(st.text(max_size=30), children, max_size=5)),
    max_leaves=25)


@given(values)
@settings(max_examples=400)
def test_fast_path_writes_the_reference_bytes(value):
    # On CPython dumps() may hand the value to cbor2's C encoder; whatever it
    # does must be byte-identical to the portable encoder MicroPython runs.
    assert cbor.dumps(value) == cbor.dumps_portable(value)


@given(values)
@settings(max_examples=400)
def test_round_trip(value):
    assert cbor.loads(cbor.dumps(value)) == value


@given(text_keyed)
@settings(max_examples=300)
def test_matches_cbor2_where_key_orders_agree(value):
    # cbor2's canonical=True sorts keys length-first (RFC 7049); RFC 8949 4.2.1
    # sorts by encoded bytes.  For text keys, the only keys our formats use
    # (SPEC 2), the two orders coincide, so the verifier may rely on cbor2.
    assert cbor.dumps(value) == cbor2.dumps(value, canonical=True)


@given(st.binary(max_size=64))
@settings(max_examples=2000)
def test_arbitrary_bytes_decode_canonically_or_raise_decode_error(data):
    try:
        value = cbor.loads(data)
    except DecodeError:
        return
    assert cbor.dumps(value) == data


@given(values, st.data())
@settings(max_examples=300)
def test_mutated_encodings_never_raise_foreign_errors(value, data):
    encoded = bytearray(cbor.dumps(value))
    pos = data.draw(st.integers(0, len(encoded) - 1))
    encoded[pos] = data.draw(st.integers(0, 255))
    try:
        decoded = cbor.loads(bytes(encoded))
    except DecodeError:
        return
    assert cbor.dumps(decoded) == bytes(encoded)


def test_floats_are_not_encodable():
    with pytest.raises(LocalError):
        cbor.dumps(1.5)


def test_deep_nesting_is_refused():
    deep = b"\x81" * 40 + b"\x00"
    with pytest.raises(DecodeError):
        cbor.loads(deep)


@pytest.mark.parametrize("depth", [15, 16, 17])
@pytest.mark.parametrize("wrap", [lambda v: [v], lambda v: {"k": v}], ids=["array", "map"])
def test_fast_path_keeps_the_depth_limit(depth, wrap):
    # Items nested deeper than MAX_DEPTH are refused by both encoders alike.
    value = 1
    for _ in range(depth):
        value = wrap(value)
    try:
        expected = cbor.dumps_portable(value)
    except LocalError:
        with pytest.raises(LocalError):
            cbor.dumps(value)
    else:
        assert cbor.dumps(value) == expected


def test_fast_path_orders_keys_by_encoding():
    # Shorter text first, then bytewise UTF-8: "z" < "aa"; "é" is 2 bytes.
    value = {"aa": 1, "z": [{"é": 2, "b": 3, "ab": 4}], "": None}
    assert cbor.dumps(value) == cbor.dumps_portable(value)
    assert list(cbor.loads(cbor.dumps(value))) == ["", "z", "aa"]


def _portable_loads(data):
    """cbor.loads with the cbor2 fast path switched off (what MicroPython runs)."""
    from daozhang.agent.core import cbor_fast
    saved = cbor_fast._cbor2_loads
    cbor_fast._cbor2_loads = None
    try:
        return cbor.loads(data)
    finally:
        cbor_fast._cbor2_loads = saved


def _outcome(loads, data):
    try:
        return ("ok", loads(data))
    except DecodeError:
        return ("refused",)


@given(st.one_of(st.binary(max_size=64), values.map(cbor.dumps_portable)), st.data())
@settings(max_examples=1500)
def test_fast_decoder_agrees_with_the_portable_one(data, draw):
    """Invariant: on any input, the cbor2 fast path accepts exactly what the
    portable decoder accepts, and decodes it to the same value."""
    if data and draw.draw(st.booleans()):
        mutated = bytearray(data)
        mutated[draw.draw(st.integers(0, len(data) - 1))] = draw.draw(st.integers(0, 255))
        data = bytes(mutated)
    assert _outcome(cbor.loads, data) == _outcome(_portable_loads, data)


@pytest.mark.parametrize("lenient", [
    bytes.fromhex("fb3ff0000000000000"),            # a float
    bytes.fromhex("d9010063616263"),                # tag 256 (string reference namespace)
    bytes.fromhex("a2616101616102"),                # duplicate key
    bytes.fromhex("a2616201616101"),                # unsorted keys
    bytes.fromhex("1817"),                          # 23 in a two-byte head
    bytes.fromhex("5f42010243030405ff"),            # indefinite-length bytes
])
def test_fast_decoder_refuses_what_cbor2_would_let_through(lenient):
    with pytest.raises(DecodeError):
        cbor.loads(lenient)
