"""Hypothesis fuzz of every parser of outside bytes in the verifier.

Invariants, stated first:
- verify_journal(any bytes) returns a VerificationReport: it never raises;
- check_journal(any bytes) returns a report or raises a VerificationError, nothing else;
- the record decoder (show/export) yields records or raises a VerificationError;
- an anchor parser raises BadTrustInput or returns an Anchor;
- any change to a valid journal's bytes is a finding (all of its segments are in use).
"""

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dztest import journal_forge as forge
from daozhang.host_tools.verify.reader import iter_records
from daozhang.host_tools.verify.journal import check_journal, verify_journal
from daozhang.host_tools.verify.anchor import parse_anchor
from daozhang.host_tools.verify.cbor import CborProblem, decode_canonical
from daozhang.host_tools.verify.errors import BadTrustInput, VerificationError
from daozhang.host_tools.verify.report import VerificationReport

KEY = forge.new_key()
PUB = forge.raw_public(KEY)


def full_ring():
    """A small forged journal whose every segment is in use (the ring wrapped)."""
    j = forge.Journal("fz-1", 8192, 2)
    j.commit([(forge.BOOT, {"reason": "init"})], KEY)
    n = 0
    while len(j.segments) < 2 or j.segments[-1].index != 1 or len(j.records()) < 40:
        j.commit([(forge.TRANSACTION, forge.sample_txn(n + k)) for k in range(6)], KEY, acked=None)
        n += 6
    return j.render()


VALID = full_ring()
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_fuzzed_journal_is_valid():
    assert check_journal(VALID, [PUB]).ok


def decodes_or_own_error(data):
    assert isinstance(verify_journal(data, [PUB]), VerificationReport)
    try:
        check_journal(data, [PUB])
    except VerificationError:
        pass
    try:
        for _ in iter_records(data):
            pass
    except VerificationError:
        pass


@FUZZ
@given(st.binary(max_size=20000))
def test_arbitrary_bytes(data):
    decodes_or_own_error(data)


@FUZZ
@given(st.binary(min_size=0, max_size=300))
def test_arbitrary_bytes_behind_a_valid_superblock(tail):
    decodes_or_own_error(VALID[:4096] + tail)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_journal_is_a_finding(edits):
    data = bytearray(VALID)
    for offset, value in edits:
        data[offset] = value
    decodes_or_own_error(bytes(data))
    if bytes(data) != VALID:
        assert not verify_journal(bytes(data), [PUB]).ok


@FUZZ
@given(st.integers(4096, len(VALID)), st.binary(max_size=64))
def test_truncated_or_extended_journal(cut, extra):
    data = VALID[:cut] + extra
    decodes_or_own_error(data)
    if data != VALID:
        assert not verify_journal(data, [PUB]).ok


@FUZZ
@given(st.binary(max_size=400))
def test_anchor_parser(data):
    try:
        parse_anchor(data)
    except BadTrustInput:
        pass


@FUZZ
@given(st.binary(max_size=200))
def test_cbor_check_on_arbitrary_bytes(data):
    try:
        decode_canonical(data)
    except CborProblem:
        pass


MODEL_RECORDS = len(forge.Journal.parse(VALID).records())


@settings(max_examples=60, deadline=None)
@given(st.integers(0, MODEL_RECORDS - 1), st.sampled_from(["amount", "flags", "wall", "drop", "dup"]),
       st.booleans())
def test_any_record_edit_with_crc_and_chain_fixed_up_is_a_finding(index, edit, with_attacker_key):
    """Invariant: whatever one record the attacker edits, and however he re-frames and
    re-chains, without the device key the journal does not verify."""
    # dropping the newest record is a truncated tail: only an anchor shows it (tested elsewhere)
    assume(not (edit == "drop" and index == MODEL_RECORDS - 1))
    model = forge.Journal.parse(VALID)
    recs = model.records()
    rec = recs[index]
    seg = next(s for s in model.segments if rec in s.records)
    if edit == "amount" and "amount" in rec.payload:
        rec.payload["amount"] += 1
    elif edit == "amount":
        # no amount here; adding one would be an unknown key, which SPEC 3.5 says
        # readers ignore (and, on the newest checkpoint, nothing signs: see 3.13)
        rec.wall_ms += 1
    elif edit == "flags":
        rec.flags ^= forge.FLAG_OUTAGE
    elif edit == "wall":
        rec.wall_ms += 1
    elif edit == "drop":
        seg.records.remove(rec)
    else:
        seg.records.insert(seg.records.index(rec), rec.copy())
    model.rechain(key=forge.new_key() if with_attacker_key else None)
    try:
        image = model.render()
    except ValueError:                   # the edit overflowed its segment: nothing to verify
        return
    assert not verify_journal(image, [PUB]).ok
