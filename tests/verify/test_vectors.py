"""The independent verifier accepts the writer's test vectors (tests/vectors/).

Both readings of the spec must agree on the same bytes: the verifier finds
the image intact with the vector key, and its decoder reports exactly the
records the writer says it kept, at the same offsets with the same hashes.
"""

import binascii
import hashlib
import json
import os

import pytest

from daozhang.host_tools.verify.reader import iter_records
from daozhang.host_tools.verify.journal import check_journal
from daozhang.host_tools.verify.cbor import CborProblem, decode_canonical

VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vectors")


def load():
    with open(os.path.join(VECTORS, "journal.json")) as f:
        meta = json.load(f)
    with open(os.path.join(VECTORS, "journal.img.hex")) as f:
        image = binascii.unhexlify(f.read().replace("\n", "").strip())
    return meta, image


def test_vector_image_verifies():
    meta, image = load()
    assert hashlib.sha256(image).hexdigest() == meta["image_sha256"]
    report = check_journal(image, [bytes.fromhex(meta["public_key"])])
    assert report.ok and report.findings == []
    assert report.device_id == meta["device_id"]
    assert report.journal_id.hex() == meta["journal_id"]
    assert report.last_seq + 1 == meta["next_seq"]
    assert report.signatures_checked > 0


def test_decoder_agrees_with_the_writer_on_every_kept_record():
    meta, image = load()
    mine = [{"seq": r.seq, "hash": r.hash.hex(), "offset": r.offset, "type": r.type, "flags": r.flags}
            for r in iter_records(image)]
    theirs = [dict((k, r[k]) for k in ("seq", "hash", "offset", "type", "flags")) for r in meta["records_kept"]]
    assert mine == theirs


def test_cbor_vectors():
    with open(os.path.join(VECTORS, "cbor.json")) as f:
        vectors = json.load(f)
    assert vectors["valid"] and vectors["invalid"]
    for case in vectors["invalid"]:
        with pytest.raises(CborProblem):
            decode_canonical(bytes.fromhex(case["cbor"]))
    for case in vectors["valid"]:
        assert decode_canonical(bytes.fromhex(case["cbor"])) == from_json(case["value"]), case


def from_json(value):
    """cbor.json's notation: {"$bytes": hex} is a byte string."""
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return bytes.fromhex(value["$bytes"])
        return dict((k, from_json(v)) for k, v in value.items())
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value
