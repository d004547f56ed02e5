"""Deterministic CBOR (SPEC 2) on both interpreters: the shared vectors,
round trips, and refusal of non-canonical input with DecodeError."""

import binascii

from daozhang.agent.core import cbor
from daozhang.agent.core.errors import DecodeError

from portable import kit


def test_valid_vectors_decode_and_reencode_byte_for_byte():
    valid = kit.vector("cbor.json")["valid"]
    assert len(valid) > 10
    for case in valid:
        data = binascii.unhexlify(case["cbor"])
        assert cbor.loads(data) == kit.from_json(case["value"]), case
        assert cbor.dumps_portable(kit.from_json(case["value"])) == data, case


def test_invalid_vectors_are_refused_with_decode_error():
    invalid = kit.vector("cbor.json")["invalid"]
    assert len(invalid) > 5
    for case in invalid:
        kit.raises(DecodeError, cbor.loads, binascii.unhexlify(case["cbor"]))


def test_round_trip_of_a_sale_record():
    sale = {"kind": "sale", "amount": 12345, "currency": "CNY", "card": "622202******0001",
            "items": [1, -2, 2 ** 40, b"\x00\xff", "到账"], "nested": {"b": None, "a": True}}
    data = cbor.dumps_portable(sale)
    assert cbor.loads(data) == sale
    assert cbor.dumps(sale) == data


def test_map_keys_are_sorted_canonically():
    data = cbor.dumps_portable({"bb": 1, "a": 2, "c": 3})
    assert data == binascii.unhexlify("a3616102616303626262" + "01")
