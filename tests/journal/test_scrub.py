"""The background scrub (agent/journal_scrub.py).

Invariants: on a clean journal it checks every in-use segment and reports
nothing, for any read size; damage (a flipped byte in any committed record
of any segment) is reported exactly once per damage, naming its segment, at
every read size - including sizes that put frames across chunk boundaries.
"""

import pytest
from hypothesis import given, settings, strategies as st

from daozhang.agent.core.journal import record
from daozhang.agent.journal_file import JournalFile, create_journal
from daozhang.agent.journal_scrub import Scrubber
from daozhang.signing import Ed25519Signer
from dztest import journal_forge as forge
from dztest.journal_samples import StepClock

KEY = forge.new_key()


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("scrub") / "j.dzj")
    create_journal(path, "scrub-pos", size=4096 + 6 * 8192, segment_size=8192, created_ms=1764100000000)
    with JournalFile.open(path, Ed25519Signer(KEY), clock=StepClock()) as journal:
        for i in range(30):
            journal.append(record.TYPE_TRANSACTION, forge.sample_txn(i))
        segments = [i for i, s in sorted(enumerate(journal.ring.first_seqs), key=lambda p: p[1] or 0)
                    if s is not None]
        geo, head = journal.geo, journal.ring.head_index
    with open(path, "rb") as f:
        data = f.read()
    sales = []        # (file offset, seq) of every committed sale
    for index in segments:
        if index == head:
            continue          # damage there stops the writer at open (test_bit_rot.py); the scrub is for the rest
        base = geo.segment_offset(index)
        buf = data[base:base + geo.segment_size]
        off = 96
        while True:
            rec = record.decode_at(buf, off)
            if rec is None:
                break
            if rec.type == record.TYPE_TRANSACTION:
                sales.append((base + off, rec.seq))
            off += rec.size
    return path, data, sales


def scrub_all(path, data, chunk, tmp_path):
    copy = tmp_path / "copy.dzj"
    copy.write_bytes(data)
    found = []
    with JournalFile.open(str(copy), Ed25519Signer(KEY), boot=False) as journal:
        scrubber = Scrubber(journal, lambda *damage: found.append(damage))
        in_use = journal.ring.segments_in_use()
        while scrubber.segments_checked < in_use:
            assert scrubber.step(chunk) > 0
    return found, in_use


@settings(max_examples=25, deadline=None)
@given(chunk=st.integers(min_value=1, max_value=20000))
def test_clean_journal_any_read_size(image, tmp_path_factory, chunk):
    path, data, _ = image
    found, in_use = scrub_all(path, data, chunk, tmp_path_factory.mktemp("c"))
    assert found == [] and in_use >= 3


@settings(max_examples=25, deadline=None)
@given(chunk=st.sampled_from([1, 7, 96, 511, 512, 4096, 8192, 10000]), which=st.integers(0, 10 ** 6),
       delta=st.integers(0, 60))
def test_damage_in_any_segment_is_found_at_any_read_size(image, tmp_path_factory, chunk, which, delta):
    path, data, sales = image
    offset, seq = sales[which % len(sales)]
    damaged = bytearray(data)
    damaged[offset + 8 + delta] ^= 0x01
    found, _ = scrub_all(path, bytes(damaged), chunk, tmp_path_factory.mktemp("d"))
    # one damage, found at the same place on every lap (the plugin alerts once per place)
    assert len(set((segment, at) for segment, at, _, _ in found)) == 1, found
    segment, at, _, reason = found[0]
    assert segment == (offset - 4096) // 8192 and at <= offset + 8 + delta
