"""One test per attack of issue 2's "Must detect" list (python-tuf's tamper habit).

Each test starts from a journal the real writer made, mutates it as an
attacker would (fixing up CRC, chain, roots and signatures with the forge
wherever the attacker could), and expects one exact finding class from
`check_journal` - raised first - plus the same kind first in the report, both
when the newest signature of each chained run is checked (the default, SPEC
3.6.2) and when every signature is (`all_signatures`).
Trusted state is checked unchanged: the journal, public key and anchor files
keep their bytes and mtimes, since verification is read-only.
"""

import os

import pytest

from dztest import journal_forge as forge
from dztest import journal_samples as samples
from daozhang.host_tools.verify import errors
from daozhang.host_tools.verify.reader import latest_signed_checkpoint
from daozhang.host_tools.verify.journal import check_journal, verify_journal
from daozhang.host_tools.verify.anchor import make_anchor

write = samples.write


def expect(tmp_path, image, error_class, pubkeys, anchor_bytes=None):
    """Verify `image` from files; assert the exact first finding and unchanged files."""
    journal = write(tmp_path, "tampered.dzj", image)
    files = [journal] + [p for p in pubkeys if isinstance(p, str)]
    anchor = None
    if anchor_bytes is not None:
        anchor = write(tmp_path, "head.anchor", anchor_bytes)
        files.append(anchor)
    before = samples.file_state(*files)
    for all_signatures in (True, False):
        report = verify_journal(journal, pubkeys, anchor=anchor, all_signatures=all_signatures)
        assert not report.ok
        assert report.first_error().__class__ is error_class, (all_signatures, report.findings)
        with pytest.raises(error_class) as caught:
            check_journal(journal, pubkeys, anchor=anchor, all_signatures=all_signatures)
        assert isinstance(caught.value, errors.VerificationError)
        assert caught.value.exit_code == 1
    assert samples.file_state(*files) == before
    return report


def anchor_of(image):
    sb, seq, frame = latest_signed_checkpoint(image)
    return make_anchor(sb.journal_id, sb.device_id, seq, frame)


def txn_seqs(model, segment=-1):
    """Sequence numbers of transactions in one segment of the model, not next to its end."""
    return [r.seq for r in model.segments[segment].records if r.rtype == forge.TRANSACTION]


def locate(model, seq):
    for seg in model.segments:
        for i, rec in enumerate(seg.records):
            if rec.seq == seq:
                return seg, i
    raise KeyError(seq)


def test_intact_writer_journal_passes(tmp_path, writer_image, pub_file):
    path = write(tmp_path, "a.dzj", writer_image)
    report = check_journal(path, [pub_file], all_signatures=True)
    assert report.ok and report.findings == []
    assert report.records > 150 and report.signatures_checked == report.checkpoints
    assert report.signatures_vouched == 0
    newest = check_journal(path, [pub_file])
    assert newest.ok and newest.findings == []
    # one chained run: its newest signature vouches for all the others (SPEC 3.6.2)
    assert newest.signatures_checked == 1
    assert newest.signatures_vouched == newest.checkpoints - 1


def test_flipped_bit(tmp_path, writer_image, pub_file):
    model = forge.Journal.parse(writer_image)
    at = model.offset_of(txn_seqs(model, 2)[1]) + 40
    image = bytearray(writer_image)
    image[at] ^= 0x08
    report = expect(tmp_path, bytes(image), errors.CrcMismatch, [pub_file])
    assert report.findings[0].offset == at - 40
    assert report.kinds() == ["CrcMismatch"]     # resynchronised: one flip, one finding


def test_deleted_record(tmp_path, writer_image, pub_file):
    model = forge.Journal.parse(writer_image)
    seg, i = locate(model, txn_seqs(model, 3)[2])
    gone = seg.records.pop(i)
    report = expect(tmp_path, model.render(), errors.SequenceGap, [pub_file])
    assert report.findings[0].seq == gone.seq + 1
    assert report.kinds() == ["SequenceGap"]


def test_inserted_record(tmp_path, writer_image, pub_file):
    model = forge.Journal.parse(writer_image)
    seg, i = locate(model, txn_seqs(model)[0])
    before = seg.records[i]
    fake = forge.Rec(forge.TRANSACTION, 0, before.seq + 1, before.hash(), before.wall_ms, before.boot_id,
                     before.mono_ms, forge.sample_txn(999999))
    seg.records.insert(i + 1, fake)       # CRC valid, chained to its predecessor
    report = expect(tmp_path, model.render(), errors.ChainBroken, [pub_file])
    assert report.kinds() == ["ChainBroken"]


def test_duplicated_record(tmp_path, writer_image, pub_file):
    model = forge.Journal.parse(writer_image)
    seg, i = locate(model, txn_seqs(model)[1])
    seg.records.insert(i + 1, seg.records[i].copy())
    report = expect(tmp_path, model.render(), errors.DuplicateRecord, [pub_file])
    assert report.kinds() == ["DuplicateRecord"]


def test_reordered_records(tmp_path, writer_image, pub_file):
    model = forge.Journal.parse(writer_image)
    seg, i = locate(model, txn_seqs(model, 2)[0])
    assert seg.records[i + 1].rtype == forge.TRANSACTION
    seg.records[i], seg.records[i + 1] = seg.records[i + 1], seg.records[i]
    report = expect(tmp_path, model.render(), errors.ReorderedRecord, [pub_file])
    assert report.kinds() == ["ReorderedRecord"]


def test_modified_record_with_crc_and_chain_recomputed(tmp_path, writer_image, pub_file):
    model = forge.Journal.parse(writer_image)
    seg, i = locate(model, txn_seqs(model, 1)[0])
    seg.records[i].payload["amount"] = 1           # 1 fen instead of the real amount
    model.rechain()                                 # every prev, root and CRC fixed; no key
    report = expect(tmp_path, model.render(), errors.BadSignature, [pub_file])
    assert report.findings[0].seq > seg.records[i].seq


def test_segment_spliced_from_another_device(tmp_path, writer_image, other_device_image, pub_file):
    model = forge.Journal.parse(writer_image)
    free = model.segment_count - 1
    assert free not in [s.index for s in model.segments]
    other = forge.Journal.parse(other_device_image)
    size = model.segment_size
    src = 4096 + other.segments[1].index * size
    image = bytearray(writer_image)
    image[4096 + free * size:4096 + (free + 1) * size] = other_device_image[src:src + size]
    # the header carries the other journal's id; its index field is fixed up to the new slot
    header = forge.Journal.segment_header(other, forge.Segment(free, other.segments[1].records))
    image[4096 + free * size:4096 + free * size + 96] = header
    expect(tmp_path, bytes(image), errors.ForeignSegment, [pub_file])


def test_record_spliced_from_another_device(tmp_path, writer_image, other_device_image, device_key, other_key,
                                            pub_file):
    """Another device's validly signed checkpoint, its key trusted too (a fleet verify)."""
    model = forge.Journal.parse(writer_image)
    other = forge.Journal.parse(other_device_image)
    theirs = [r for r in other.segments[1].records if r.rtype == forge.CHECKPOINT][0]
    seg, i = locate(model, theirs.seq)
    assert seg.records[i].rtype == forge.CHECKPOINT
    seg.records[i] = theirs
    other_pub = write(tmp_path, "other.pub", forge.pem_public(other_key))
    report = expect(tmp_path, model.render(), errors.ForeignRecord, [pub_file, other_pub])
    assert "pos-8" in report.findings[0].message


def test_whole_journal_of_another_device_reframed(tmp_path, other_device_image, other_key, pub_file):
    """Every header and the superblock rewritten to this device; the records stay theirs."""
    model = forge.Journal.parse(other_device_image)
    model.device_id = "pos-7"
    other_pub = write(tmp_path, "other.pub", forge.pem_public(other_key))
    expect(tmp_path, model.render(), errors.ForeignRecord, [pub_file, other_pub])


def test_resigned_with_the_attackers_key(tmp_path, writer_image, attacker_key, pub_file):
    model = forge.Journal.parse(writer_image)
    seg, i = locate(model, txn_seqs(model, 2)[0])
    seg.records[i].payload["amount"] += 50000
    model.rechain(key=attacker_key, resign_from=seg.records[i].seq)
    report = expect(tmp_path, model.render(), errors.UnknownKey, [pub_file])
    assert forge.kid_of(attacker_key).hex() in report.findings[0].message


def test_resigned_with_another_trusted_key(tmp_path, writer_image, other_key, pub_file):
    model = forge.Journal.parse(writer_image)
    seg, i = locate(model, txn_seqs(model, 2)[0])
    seg.records[i].payload["amount"] += 50000
    model.rechain(key=other_key, resign_from=seg.records[i].seq)     # re-sign what changed
    other_pub = write(tmp_path, "other.pub", forge.pem_public(other_key))
    expect(tmp_path, model.render(), errors.WrongKey, [pub_file, other_pub])


def test_downgrade_to_unsigned_outside_an_outage(tmp_path, writer_image, pub_file):
    model = forge.Journal.parse(writer_image)
    seg, i = locate(model, txn_seqs(model)[-1])
    seg.records[i].payload["amount"] = 1
    checkpoint = next(r for r in seg.records[i:] if r.rtype == forge.CHECKPOINT)
    checkpoint.payload.update(alg=0, kid=b"", sig=b"")     # strip the signature, keep state 0
    model.rechain()
    expect(tmp_path, model.render(), errors.UnsignedOutsideOutage, [pub_file])


def test_downgrade_dressed_as_an_outage_stays_unrecovered(tmp_path, writer_image, pub_file):
    """The attacker also flags the records and declares state 1: the journal then
    ends inside an outage no signature ever vouched for."""
    model = forge.Journal.parse(writer_image)
    seg = model.segments[-1]
    last_cp = max(i for i, r in enumerate(seg.records) if r.rtype == forge.CHECKPOINT)
    prev_cp = max(i for i, r in enumerate(seg.records[:last_cp]) if r.rtype == forge.CHECKPOINT)
    for rec in seg.records[prev_cp + 1:last_cp + 1]:
        rec.flags = forge.FLAG_OUTAGE
        if rec.rtype == forge.TRANSACTION:
            rec.payload["amount"] = 1
    seg.records[last_cp].payload.update(alg=0, kid=b"", sig=b"", state=1)
    model.rechain()
    expect(tmp_path, model.render(), errors.UnrecoveredOutage, [pub_file])


def test_garbage_after_the_tail(tmp_path, writer_image, pub_file):
    model = forge.Journal.parse(writer_image)
    head = model.segments[-1]
    tail = 4096 + head.index * model.segment_size + 96 + sum(len(r.frame()) for r in head.records)
    image = bytearray(writer_image)
    image[tail:tail + 64] = os.urandom(63) + b"\x01"
    report = expect(tmp_path, bytes(image), errors.GarbageAfterTail, [pub_file])
    assert report.findings[0].offset == tail


def test_truncated_file_given_a_later_anchor(tmp_path, writer_image, pub_file):
    anchor = anchor_of(writer_image)
    expect(tmp_path, writer_image[:len(writer_image) - 20000], errors.TruncatedJournal, [pub_file], anchor)


def test_tail_cut_mid_commit_given_a_later_anchor(tmp_path, writer_image, pub_file):
    """The file keeps its length; the last commit is zeroed from its second record on."""
    anchor = anchor_of(writer_image)
    model = forge.Journal.parse(writer_image)
    head = model.segments[-1]
    last_txn = max(i for i, r in enumerate(head.records) if r.rtype == forge.TRANSACTION)
    commit_start = max(i for i, r in enumerate(head.records[:last_txn]) if r.rtype == forge.CHECKPOINT) + 1
    head.records = head.records[:commit_start + 1]      # one uncommitted record survives
    image = model.render()
    report = expect(tmp_path, image, errors.TruncatedJournal, [pub_file], anchor)
    assert "UncommittedTail" in report.kinds()
    assert verify_journal(image, [pub_file]).ok     # without the anchor: only a crash, informational


def test_rollback_to_an_older_valid_image(tmp_path, device_key, pub_file):
    path = str(tmp_path / "live.dzj")
    signer = samples.SwitchableSigner(device_key)
    clock = samples.StepClock()
    samples.write_journal(path, device_key, records=60, signer=signer, clock=clock)
    old_image = samples.read(path)
    from daozhang.agent.journal_file import JournalFile
    with JournalFile.open(path, signer, clock=clock) as journal:
        samples.append_sales(journal, 30, start=60)
    anchor = anchor_of(samples.read(path))
    assert verify_journal(old_image, [pub_file]).ok            # internally valid
    report = expect(tmp_path, old_image, errors.Rollback, [pub_file], anchor)
    assert report.kinds() == ["Rollback"]


def test_anchor_from_a_forked_history(tmp_path, writer_image, device_key, pub_file):
    """Even the device key's holder cannot rewrite what an anchor has pinned."""
    anchor = anchor_of(writer_image)
    model = forge.Journal.parse(writer_image)
    seg, i = locate(model, txn_seqs(model, 1)[0])
    seg.records[i].payload["amount"] = 1
    model.rechain(key=device_key)
    image = model.render()
    assert verify_journal(image, [pub_file]).ok
    expect(tmp_path, image, errors.AnchorMismatch, [pub_file], anchor)
