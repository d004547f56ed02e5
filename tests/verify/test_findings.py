"""The remaining finding kinds of SPEC 3.12, each from a journal damaged just so.

Forged records are re-chained and re-signed with the device's own key, so
the finding under test is the only thing wrong.
"""


import cbor2
import pytest

from dztest import journal_forge as forge
from daozhang.host_tools.verify import errors
from daozhang.host_tools.verify.journal import check_journal, verify_journal


@pytest.fixture(scope="module")
def key():
    return forge.new_key()


@pytest.fixture(scope="module")
def base(key):
    return forge.build(120, key, device_id="pos-7", segment_size=8192, segment_count=8)


def first_kind(image, key):
    report = verify_journal(image, [forge.raw_public(key)])
    error = report.first_error()
    with pytest.raises(type(error)):
        check_journal(image, [forge.raw_public(key)])
    return error.kind, report


def parse(base):
    return forge.Journal.parse(base.render())


def last_txn(model):
    return [r for r in model.records() if r.rtype == forge.TRANSACTION][-1]


def test_forged_base_is_intact(base, key):
    report = check_journal(base.render(), [forge.raw_public(key)])
    assert report.ok and report.records == len(base.records())


def test_bad_superblock(base, key):
    image = bytearray(base.render())
    image[8:10] = b"\x00\x02"          # format version 2
    kind, report = first_kind(bytes(image), key)
    assert kind == "BadSuperblock" and report.kinds() == ["BadSuperblock"]


def test_bad_segment_header_is_one_finding(base, key):
    image = bytearray(base.render())
    image[4096 + 8192 + 70] = 1        # header padding of segment 1
    kind, report = first_kind(bytes(image), key)
    assert kind == "BadSegmentHeader" and report.kinds() == ["BadSegmentHeader"]


def test_bad_frame_magic_then_resync(base, key):
    model = parse(base)
    at = model.offset_of(last_txn(model).seq - 3)
    image = bytearray(base.render())
    image[at] = 0xDB
    kind, report = first_kind(bytes(image), key)
    assert kind == "BadFrame"


def test_segment_order(base, key):
    model = parse(base)
    a, b = model.segments[1], model.segments[2]
    a.index, b.index = b.index, a.index      # swapped in place, headers and CRCs fixed up
    kind, _ = first_kind(model.render(), key)
    assert kind == "SegmentOrder"


def resigned_with(model, key, mutate):
    rec = last_txn(model)
    mutate(rec)
    model.rechain(key=key)
    return model.render()


def test_non_canonical_cbor(base, key):
    def longer_head(rec):
        body = rec.body()
        rec.raw_body = b"\x98\x06" + body[1:]        # array head in 2 bytes instead of 1
    kind, _ = first_kind(resigned_with(parse(base), key, longer_head), key)
    assert kind == "NonCanonicalCbor"


def test_float_in_payload_is_non_canonical(base, key):
    def money_as_float(rec):
        rec.payload["amount"] = 12.5
    kind, _ = first_kind(resigned_with(parse(base), key, money_as_float), key)
    assert kind == "NonCanonicalCbor"


def test_bad_record_body(base, key):
    def five_items(rec):
        rec.raw_body = cbor2.dumps([rec.seq, rec.prev, rec.wall_ms, rec.boot_id, rec.mono_ms])
    kind, _ = first_kind(resigned_with(parse(base), key, five_items), key)
    assert kind == "BadRecordBody"


def test_unknown_record_type(base, key):
    def retype(rec):
        rec.rtype = 42
    kind, report = first_kind(resigned_with(parse(base), key, retype), key)
    assert kind == "UnknownRecordType" and report.kinds() == ["UnknownRecordType"]


def test_bad_checkpoint_root(base, key):
    model = parse(base)
    cp = [r for r in model.records() if r.rtype == forge.CHECKPOINT][-1]
    cp.payload["root"] = bytes(32)
    cp.payload["sig"] = key.sign(forge.Journal.signed_message(cp, cp.payload))
    kind, _ = first_kind(model.render(), key)
    assert kind == "BadCheckpoint"


def test_cursors_moving_back_are_a_bad_checkpoint(base, key):
    model = parse(base)
    cp = [r for r in model.records() if r.rtype == forge.CHECKPOINT][-1]
    cp.payload["acked"] = cp.payload["released"] = 0
    model.rechain(key=key, resign_from=cp.seq)
    kind, _ = first_kind(model.render(), key)
    assert kind == "BadCheckpoint"


def test_uncommitted_tail_is_informational(base, key):
    model = parse(base)
    model.segments[-1].records.pop()      # the last checkpoint never made it
    report = check_journal(model.render(), [forge.raw_public(key)])
    assert report.ok and report.kinds() == ["UncommittedTail"]


def free_segment_with_a_byte(base, which):
    head = base.segments[-1].index
    free = [(head + k) % base.segment_count for k in range(1, base.segment_count)]
    free = [i for i in free if i not in [s.index for s in base.segments]]
    image = bytearray(base.render())
    image[4096 + free[which] * 8192 + 4000] = 0x40
    return bytes(image)


def test_non_zero_bytes_in_a_free_segment(base, key):
    kind, _ = first_kind(free_segment_with_a_byte(base, -1), key)
    assert kind == "GarbageAfterTail"


def test_torn_new_segment_after_the_head_is_informational(base, key):
    report = check_journal(free_segment_with_a_byte(base, 0), [forge.raw_public(key)])
    assert report.ok and report.kinds() == ["UncommittedTail"]


def test_bytes_past_the_geometry(base, key):
    kind, _ = first_kind(base.render() + b"\x00" * 10, key)
    assert kind == "GarbageAfterTail"


def test_every_finding_kind_has_a_class_and_a_meaning():
    assert len(errors.FINDING_KINDS) == 30
    for kind in errors.FINDING_KINDS:
        cls = errors.FINDING_CLASSES[kind]
        assert issubclass(cls, errors.VerificationError) and cls.kind == kind and cls.exit_code == 1
        assert errors.FINDING_MEANINGS[kind]


def test_report_counts_and_fill(base, key):
    report = check_journal(base.render(), [forge.raw_public(key)])
    assert report.counts["transaction"] + report.counts["checkpoint"] + report.counts["boot"] == report.records
    assert 0 < report.fill_level < 1
    assert report.last_checkpoint["seq"] == report.last_seq
    assert report.device_id == "pos-7"


def test_trailing_byte_in_a_body(base, key):
    def trailing(rec):
        rec.raw_body = rec.body() + b"\x00"
    kind, _ = first_kind(resigned_with(parse(base), key, trailing), key)
    assert kind == "NonCanonicalCbor"


def test_body_split_across_two_frames(base, key):
    """Each frame must hold exactly its own body: one byte of record k+1's body
    moved into record k's frame re-encodes identically when joined, and is still caught."""
    model = parse(base)
    seg = model.segments[-1]
    i = max(j for j, r in enumerate(seg.records[:-1]) if r.rtype == forge.TRANSACTION and
            seg.records[j + 1].rtype == forge.TRANSACTION)
    a, b = seg.records[i], seg.records[i + 1]
    model.rechain(key=key)
    body_a, body_b = a.body(), b.body()
    a.raw_body, b.raw_body = body_a + body_b[:1], body_b[1:]
    model.rechain(key=key)              # frames, CRCs, chain and signatures all fixed up
    kind, _ = first_kind(model.render(), key)
    assert kind == "NonCanonicalCbor"
