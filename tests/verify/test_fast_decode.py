"""The fast path's strict decoder (cbrrr, DAG-CBOR) against the careful SPEC 2 check.

Invariant: whatever the fast path accepts - the strict decoder reads the whole
body and the value passes the item-type walk both paths use - the careful
check (verify/cbor.py decode_canonical) accepts too, with the same value.  The
fast path may refuse more (non-text map keys): the careful path then decides.
"""

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daozhang.agent.core import cbor as writer_cbor
from daozhang.host_tools.verify.cbor import CborProblem, _check_item, decode_canonical
from daozhang.host_tools.verify.fast import fast_decode

scalars = st.one_of(st.integers(-(2 ** 64), 2 ** 64 - 1), st.text(max_size=30), st.binary(max_size=30),
                    st.booleans(), st.none(), st.floats(allow_nan=False))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5),
    st.dictionaries(st.one_of(st.text(max_size=8), st.integers(-1000, 1000)), inner, max_size=5)),
    max_leaves=20)


def fast_accepts(body):
    value = fast_decode(body)
    if value is None:
        return False, None
    try:
        _check_item(value, 0)
    except CborProblem:
        return False, None
    return True, value


def assert_agrees(body):
    ok, value = fast_accepts(body)
    if ok:
        assert decode_canonical(body) == value, body.hex()


@settings(max_examples=400, deadline=None)
@given(values, st.data())
def test_fast_accepts_only_what_the_careful_check_accepts(value, data):
    encoded = bytearray(cbor2.dumps(value))
    assert_agrees(bytes(encoded))
    for _ in range(data.draw(st.integers(0, 3))):
        i = data.draw(st.integers(0, len(encoded) - 1))
        encoded[i] = data.draw(st.integers(0, 255))
    assert_agrees(bytes(encoded) + data.draw(st.binary(max_size=2)))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=12), st.one_of(st.integers(0, 2 ** 64 - 1), st.text(max_size=40)),
                       max_size=14))
def test_writer_payloads_take_the_fast_path(payload):
    body = writer_cbor.dumps([7, bytes(32), 1764100000000, bytes(8), 5, payload])
    assert fast_decode(body) == [7, bytes(32), 1764100000000, bytes(8), 5, payload]


@pytest.mark.parametrize("body", [
    b"\x18\x05", b"\x19\x00\xff", b"\x1a\x00\x00\xff\xff", b"\x1b\x00\x00\x00\x00\xff\xff\xff\xff",   # long heads
    b"\x38\x05", b"\x58\x01a", b"\x78\x01a", b"\x98\x01\x01", b"\xb8\x01\x61a\x01",
    b"\x01\x00",                                             # trailing byte
    b"\xa2\x61b\x01\x61a\x02", b"\xa2\x61a\x01\x61a\x02",     # unsorted, duplicate keys
    b"\x9f\x01\xff", b"\x7f\x61a\xff", b"\xbf\xff", b"\x5f\x41a\xff",   # indefinite lengths
    b"\xf7", b"\xe0", b"\xf8\x20", b"\xf9\x3c\x00", b"\xfa\x3f\x80\x00\x00",   # simple values, floats
    b"\xc2\x41\x01", b"\xd8\x19\x00", b"\xd9\xd9\xf7\x01", b"\xd8\x2a\x45\x00\x01\x02\x03\x04",   # tags
    b"\x62\xc0\x80", b"\x63\xed\xa0\x80",                     # overlong UTF-8, a surrogate
])
def test_non_deterministic_forms_are_refused(body):
    with pytest.raises(CborProblem):
        decode_canonical(body)
    assert fast_accepts(body) == (False, None)


def test_a_float64_is_decoded_but_refused_by_the_type_walk():
    # DAG-CBOR allows 64-bit floats; SPEC 2 does not: the shared type walk refuses them.
    body = b"\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00"
    assert fast_decode(body) == 1.0
    assert fast_accepts(body) == (False, None)


@pytest.mark.parametrize("tamper", [None, "bitflip"])
def test_without_cbrrr_the_careful_path_gives_the_same_report(writer_image, device_key, monkeypatch, tamper):
    """A platform without a cbrrr wheel verifies every record the careful way:
    slower, with the same findings."""
    from dztest import journal_forge as forge
    from daozhang.host_tools.verify import fast as verify_fast
    from daozhang.host_tools.verify.journal import verify_journal
    image = bytearray(writer_image)
    if tamper:
        image[len(image) // 3] ^= 0x10
    keys = [forge.raw_public(device_key)]

    def summary(report):
        return report.ok, [(f.code if hasattr(f, "code") else type(f).__name__, f.seq, f.offset)
                           for f in report.findings]
    with_fast = summary(verify_journal(bytes(image), keys))
    monkeypatch.setattr(verify_fast, "_strict_decode", None)
    assert summary(verify_journal(bytes(image), keys)) == with_fast
    assert with_fast[0] == (tamper is None)
