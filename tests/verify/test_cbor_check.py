"""The verifier's deterministic CBOR check (SPEC 2) against the writer's codec.

Properties: everything the writer's codec (agent/core/cbor.py) encodes, the
verifier accepts as canonical and decodes to the same value; anything the
writer's decoder rejects as non-canonical, the verifier rejects too.  (Tests
may use the writer; the verifier itself never does.)
"""

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daozhang.agent.core import cbor as writer_cbor
from daozhang.agent.core.errors import DecodeError
from daozhang.host_tools.verify.cbor import CborProblem, decode_canonical

scalars = st.one_of(st.integers(-(2 ** 64), 2 ** 64 - 1), st.text(max_size=20), st.binary(max_size=20),
                    st.booleans(), st.none())
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5),
    st.dictionaries(st.one_of(st.text(max_size=8), st.integers(-1000, 1000)), inner, max_size=5)),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(values)
def test_writer_encodings_are_canonical_for_the_verifier(value):
    data = writer_cbor.dumps(value)
    assert decode_canonical(data) == value


@settings(max_examples=300, deadline=None)
@given(values, st.data())
def test_verifier_agrees_with_the_writer_on_mutations(value, data):
    encoded = bytearray(writer_cbor.dumps(value))
    if encoded:
        i = data.draw(st.integers(0, len(encoded) - 1))
        encoded[i] = data.draw(st.integers(0, 255))
    encoded = bytes(encoded) + data.draw(st.binary(max_size=2))
    try:
        writer_value = writer_cbor.loads(encoded)
        writer_ok = True
    except DecodeError:
        writer_ok = False
    try:
        mine = decode_canonical(encoded)
        mine_ok = True
    except CborProblem:
        mine_ok = False
    assert mine_ok == writer_ok, encoded.hex()
    if mine_ok:
        assert mine == writer_value


def test_mixed_key_types_use_bytewise_order():
    # RFC 8949 4.2.1: 1000 (0x19 03e8) sorts before "a" (0x61 61); length-first would not
    good = b"\xa2\x19\x03\xe8\x01\x61a\x02"
    assert writer_cbor.dumps({"a": 2, 1000: 1}) == good
    assert decode_canonical(good) == {1000: 1, "a": 2}
    bad = b"\xa2\x61a\x02\x19\x03\xe8\x01"
    assert cbor2.loads(bad) == {1000: 1, "a": 2}          # cbor2 alone would take it
    with pytest.raises(CborProblem):
        decode_canonical(bad)
