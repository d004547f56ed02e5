"""The writer's field-by-field checkpoint encoding (checkpoint.encode_parts).

Invariant: for every checkpoint the ring can write, the signed message
equals signed_message() and the payload equals cbor.dumps() of the payload
map, byte for byte; out-of-range fields raise LocalError, as the generic
encoder would refuse them.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daozhang.agent.core import cbor
from daozhang.agent.core.errors import LocalError
from daozhang.agent.core.journal import checkpoint, record

uints = st.integers(0, 2 ** 64 - 1)
hashes = st.binary(min_size=32, max_size=32)


@given(dev=st.text(min_size=1, max_size=40), seq=uints, head=hashes, wall_ms=uints,
       boot_id=st.binary(min_size=8, max_size=8), mono_ms=uints, kid=st.sampled_from([b"", b"\x01" * 8]),
       alg=st.sampled_from([0, 1]), first=uints, root=hashes, acked=uints, released=uints,
       state=st.sampled_from([0, 1, 2]), sig=st.sampled_from([b"", b"\x07" * 64]))
@settings(max_examples=300)
def test_encode_parts_matches_the_generic_encoder(dev, seq, head, wall_ms, boot_id, mono_ms, kid, alg, first,
                                                  root, acked, released, state, sig):
    times = record.times_bytes(wall_ms, boot_id, mono_ms)
    message, before, after = checkpoint.encode_parts(cbor.text_item(dev), seq, head, times, kid, alg, first,
                                                     root, acked, released, state)
    assert message == checkpoint.signed_message(dev, seq, head, wall_ms, boot_id, mono_ms, kid, alg, first, root,
                                                acked, released, state)
    payload = {"alg": alg, "kid": kid, "dev": dev, "first": first, "root": root, "acked": acked,
               "released": released, "state": state, "sig": sig}
    assert before + cbor.bytes_item(sig) + after == cbor.dumps_portable(payload)


@pytest.mark.parametrize("field", ["seq", "first", "acked"])
@pytest.mark.parametrize("value", [-1, 2 ** 64, True])
def test_encode_parts_refuses_what_is_not_an_unsigned_integer(field, value):
    args = {"seq": 1, "first": 1, "acked": 0}
    args[field] = value
    with pytest.raises(LocalError):
        checkpoint.encode_parts(cbor.text_item("pos"), args["seq"], bytes(32), record.times_bytes(1, bytes(8), 2),
                                b"", 0, args["first"], bytes(32), args["acked"], 0, 1)


def test_record_body_written_by_hand_is_the_canonical_array():
    payload = {"kind": "sale", "amount": 100, "nested": [{"b": 1, "a": None}]}
    for seq, wall_ms, mono_ms in [(0, 0, 0), (23, 24, 255), (256, 65536, 2 ** 32), (2 ** 64 - 1, 1, 2 ** 40)]:
        frame, _ = record.encode(record.TYPE_TRANSACTION, 0, seq, bytes(32), wall_ms, b"\x02" * 8, mono_ms, payload)
        body = frame[record.HEADER_SIZE:-record.CRC_SIZE]
        assert body == cbor.dumps_portable([seq, bytes(32), wall_ms, b"\x02" * 8, mono_ms, payload])


@pytest.mark.parametrize("bad", [-1, True, 2 ** 64])
def test_record_refuses_a_seq_that_is_not_an_unsigned_integer(bad):
    with pytest.raises(LocalError):
        record.encode(record.TYPE_TRANSACTION, 0, bad, bytes(32), 1, bytes(8), 2, {})
