"""A flipped bit anywhere is detected (issue 2): every header bit, 2,000 sampled others.

The journal holds at least 1,000 records, written by the real writer, and its
ring has wrapped so every segment is in use: no byte of the file is outside
what the verifier checks (superblock, headers, frames, zero tails).  Flips
happen in memory and `check_journal` (which stops at the first finding)
verifies the bytes; every flip must raise a VerificationError.
"""

import random

import pytest

from dztest import journal_forge as forge
from dztest import journal_samples as samples
from daozhang.host_tools.verify.journal import check_journal
from daozhang.host_tools.verify.errors import VerificationError

SEGMENT_SIZE = 32768
SEGMENTS = 13
SAMPLED_BITS = 2000


@pytest.fixture(scope="module")
def sweep_journal(tmp_path_factory):
    key = forge.new_key()
    path = str(tmp_path_factory.mktemp("sweep") / "sweep.dzj")
    samples.write_journal(path, key, records=1400, segment_size=SEGMENT_SIZE, segment_count=SEGMENTS,
                          per_commit=40, release="inline")
    image = samples.read(path)
    report = check_journal(image, [forge.raw_public(key)])
    assert report.ok and report.records >= 1000 and report.segments_in_use == SEGMENTS
    return bytearray(image), forge.raw_public(key)


def undetected(image, pub, bit_positions):
    missed = []
    for bit in bit_positions:
        byte, mask = bit // 8, 1 << (bit % 8)
        image[byte] ^= mask
        try:
            check_journal(image, [pub])
            missed.append(bit)
        except VerificationError:
            pass
        finally:
            image[byte] ^= mask
    return missed


def header_bits():
    bits = list(range(4096 * 8))                      # the whole superblock, padding included
    for index in range(SEGMENTS):
        start = (4096 + index * SEGMENT_SIZE) * 8
        bits.extend(range(start, start + 96 * 8))     # every segment header
    return bits


def test_every_header_bit_flip_is_detected(sweep_journal):
    image, pub = sweep_journal
    bits = header_bits()
    assert len(bits) == 4096 * 8 + SEGMENTS * 96 * 8
    assert undetected(image, pub, bits) == []


def test_sampled_bit_flips_anywhere_else_are_detected(sweep_journal):
    image, pub = sweep_journal
    rng = random.Random(20261126)
    headers = set(header_bits())
    bits = []
    while len(bits) < SAMPLED_BITS:
        bit = rng.randrange(4096 * 8, len(image) * 8)
        if bit not in headers:
            bits.append(bit)
    original = bytes(image)
    assert undetected(image, pub, bits) == []
    assert bytes(image) == original
