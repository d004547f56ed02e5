"""The plain record decoder behind show/export, and `latest_signed_checkpoint` behind head."""

import os

import pytest

from dztest import journal_forge as forge
from daozhang.host_tools.verify import errors
from daozhang.host_tools.verify.reader import iter_records, latest_signed_checkpoint


@pytest.fixture(scope="module")
def journal():
    return forge.build(100, forge.new_key(), segment_count=8)


def test_records_in_sequence_order_with_offsets_and_hashes(journal):
    image = journal.render()
    records = list(iter_records(image))
    assert [r.seq for r in records] == [r.seq for r in journal.records()]
    assert [r.hash for r in records] == [r.hash() for r in journal.records()]
    assert all(image[r.offset:r.offset + 2] == b"\xda\x5a" for r in records)


def test_a_torn_tail_ends_the_records_quietly(journal):
    head = journal.segments[-1]
    tail = 4096 + head.index * journal.segment_size + 96 + sum(len(r.frame()) for r in head.records)
    image = bytearray(journal.render())
    image[tail:tail + 40] = os.urandom(39) + b"\x01"
    assert len(list(iter_records(bytes(image)))) == len(journal.records())


def test_damage_before_the_tail_raises_its_finding_class(journal):
    image = bytearray(journal.render())
    image[journal.offset_of(10) + 20] ^= 1
    with pytest.raises(errors.CrcMismatch):
        list(iter_records(bytes(image)))


def test_latest_signed_checkpoint_is_the_newest_one(journal):
    sb, seq, frame = latest_signed_checkpoint(journal.render())
    last = journal.records()[-1]
    assert last.rtype == forge.CHECKPOINT and seq == last.seq and frame == last.frame()
    assert sb.device_id == journal.device_id


def test_no_signed_checkpoint_is_a_finding():
    j = forge.Journal("pos-9", 8192, 4)
    j.commit([(forge.BOOT, {"reason": "init"})], None)      # an outage from the start
    with pytest.raises(errors.VerificationError):
        latest_signed_checkpoint(j.render())
