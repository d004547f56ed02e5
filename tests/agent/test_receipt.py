"""Receipt codes (agent/core/intake/receipt.py, agent/receipt.py; SPEC 5.5)."""

import base64
import os

import pytest
from hypothesis import given, settings, strategies as st

from daozhang.agent.core.errors import DecodeError
from daozhang.agent.core.intake import receipt as core
from daozhang.agent.journal_file import JournalFile, create_journal
from daozhang.agent.receipt import ReceiptBadSignature, ReceiptWrongKey, verify_code
from daozhang.signing import generate_keypair, load_signer
from daozhang.agent.core.intake.txn import validate
from daozhang.agent.core.journal import record
from dztest.agent_daemon import sale
from dztest.micropython import run_micropython


@pytest.fixture(scope="module")
def issued(tmp_path_factory):
    """Receipts of one commit of 9 transactions (deterministic batch), and the keys."""
    tmp = str(tmp_path_factory.mktemp("receipt"))
    generate_keypair(os.path.join(tmp, "dev"))
    generate_keypair(os.path.join(tmp, "other"))
    path = os.path.join(tmp, "j.dzj")
    create_journal(path, "pos-r", size=1 << 20, segment_size=64 << 10)
    j = JournalFile.open(path, load_signer(os.path.join(tmp, "dev.key")))
    appended = j.append_many([(record.TYPE_TRANSACTION, validate(sale("T-%d" % i))) for i in range(9)])
    j.close()
    results = []
    for a in appended:
        rc = core.from_appended("pos-r", a)
        results.append({"seq": a.seq, "hash": a.hash.hex(), "receipt_code": core.encode(rc)})
    return tmp, results


@settings(max_examples=300)
@given(st.binary(max_size=80) | st.binary(min_size=200, max_size=700))
def test_base32_matches_rfc4648(data):
    text = core.b32encode(data)
    assert text == base64.b32encode(data).decode().rstrip("=")
    assert core.b32decode(text) == data
    fast, core._fast_b32encode = core._fast_b32encode, None    # MicroPython's path
    try:
        assert core.b32encode(data) == text
    finally:
        core._fast_b32encode = fast


def test_every_receipt_verifies_with_the_device_key(issued):
    tmp, results = issued
    for r in results:
        rc = verify_code(r["receipt_code"], os.path.join(tmp, "dev.pub"))
        assert rc["seq"] == r["seq"] and rc["hash"].hex() == r["hash"]
        assert set(r["receipt_code"][4:]) <= set(core._B32)   # QR alphanumeric mode


def test_wrong_key_is_named(issued):
    tmp, results = issued
    with pytest.raises(ReceiptWrongKey):
        verify_code(results[0]["receipt_code"], os.path.join(tmp, "other.pub"))


@pytest.mark.parametrize("field", ["dev", "seq", "hash", "head", "wall_ms", "first", "acked",
                                   "released", "state", "path", "sig", "cp_seq"])
def test_tampered_receipt_fails(issued, field):
    """Mutate one field, re-encode: an exact ReceiptInvalid subclass, never a pass."""
    tmp, results = issued
    r = results[3]                       # inside the batch: not the chain head
    rc = core.decode(r["receipt_code"])
    value = rc[field]
    if isinstance(value, bytes):
        rc[field] = bytes([value[0] ^ 1]) + value[1:]
    elif isinstance(value, str):
        rc[field] = value + "x"
    elif isinstance(value, list):
        rc[field] = [bytes([value[0][0] ^ 1]) + value[0][1:]] + value[1:]
    else:
        rc[field] = value + 1
    with pytest.raises(core.ReceiptInvalid) as info:
        verify_code(core.encode(rc), os.path.join(tmp, "dev.pub"))
    if field in ("hash", "head", "dev", "wall_ms", "acked", "released", "path", "sig"):
        assert isinstance(info.value, ReceiptBadSignature)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_fuzz_decode_raises_only_decode_error(text):
    """Invariant: any text decodes to a receipt or raises DecodeError."""
    try:
        core.decode("DZR:" + text)
    except DecodeError:
        pass


def test_micropython_rebuilds_the_same_signed_message(issued):
    tmp, results = issued
    code = results[3]["receipt_code"]
    mp = run_micropython("from daozhang.agent.core.intake import receipt\n"
                         "print(receipt.check(receipt.decode(%r)).hex())\n" % code)
    assert mp.strip() == core.check(core.decode(code)).hex()
