"""SPEC 3.7 (signer outages) and 3.8 (keys, rotation), each rule with its own finding.

The legitimate sequences come from the real writer (its signer made
unavailable for a while); the broken ones are forged with the device's own
key, as a buggy writer or the key's holder could write them.
"""

import pytest

from dztest import journal_forge as forge
from dztest import journal_samples as samples
from daozhang.agent.journal_file import JournalFile
from daozhang.host_tools.verify import errors
from daozhang.host_tools.verify.journal import check_journal, verify_journal


def outage_journal(tmp_path, key, recover=True):
    path = str(tmp_path / "outage.dzj")
    signer = samples.SwitchableSigner(key)
    clock = samples.StepClock()
    samples.write_journal(path, key, records=20, signer=signer, clock=clock)
    with JournalFile.open(path, signer, clock=clock, boot=False) as journal:
        signer.available = False
        samples.append_sales(journal, 10, start=20, release=False)
        if recover:
            signer.available = True
            samples.append_sales(journal, 5, start=30, release=False)
    return samples.read(path)


def test_outage_then_signed_recovery_verifies(tmp_path, device_key):
    image = outage_journal(tmp_path, device_key)
    report = check_journal(image, [forge.raw_public(device_key)])
    states = [r.payload["state"] for r in forge.Journal.parse(image).records() if r.rtype == forge.CHECKPOINT]
    assert 1 in states and 2 in states and report.ok


def test_journal_ending_in_an_outage_is_reported(tmp_path, device_key):
    image = outage_journal(tmp_path, device_key, recover=False)
    with pytest.raises(errors.UnrecoveredOutage):
        check_journal(image, [forge.raw_public(device_key)])


def forged(key, script):
    """A forged journal: script is a list of (n_sales, signed?, state override or None, flag override)."""
    j = forge.Journal("pos-7", 8192, 6)
    j.commit([(forge.BOOT, {"reason": "init"})], key)
    n = 0
    for sales, signed, state, flags in script:
        recs = j.commit([(forge.TRANSACTION, forge.sample_txn(n + k)) for k in range(sales)],
                        key if signed else None)
        n += sales
        cp = recs[-1]
        if state is not None or flags is not None:
            for rec in recs:
                if flags is not None:
                    rec.flags = flags
            if state is not None:
                cp.payload["state"] = state
            j.rechain(key=key, resign_from=recs[0].seq)
    return j.render()


@pytest.mark.parametrize("script, error", [
    # an outage (state 1) followed directly by a normal signed checkpoint
    ([(2, True, None, None), (2, False, None, None), (2, True, 0, None)], errors.OutageNotRecovered),
    # a recovery checkpoint with no outage before it
    ([(2, True, None, None), (2, True, 2, None)], errors.RecoveryWithoutOutage),
    # records flagged as outage records under a normal signed checkpoint
    ([(2, True, None, None), (2, True, None, forge.FLAG_OUTAGE)], errors.OutageFlagMisuse),
    # an unsigned checkpoint covering records not flagged
    ([(2, True, None, None), (2, False, None, 0), (1, True, None, None)], errors.UnsignedOutsideOutage),
])
def test_outage_rules(device_key, script, error):
    image = forged(device_key, script)
    report = verify_journal(image, [forge.raw_public(device_key)])
    assert report.first_error().__class__ is error, report.findings
    with pytest.raises(error):
        check_journal(image, [forge.raw_public(device_key)])


def rotation_journal(old, new, sign_after_with):
    j = forge.Journal("pos-7", 8192, 6)
    j.commit([(forge.BOOT, {"reason": "init"})], old)
    j.commit([(forge.TRANSACTION, forge.sample_txn(1))], old)
    j.commit([(forge.KEY_ROTATION, {"alg": 1, "kid": forge.kid_of(new), "pub": forge.raw_public(new)})], old)
    j.commit([(forge.TRANSACTION, forge.sample_txn(2))], sign_after_with)
    j.commit([(forge.TRANSACTION, forge.sample_txn(3))], sign_after_with)
    return j.render()


def test_key_rotation_vouched_by_the_old_key_is_followed(device_key, other_key):
    image = rotation_journal(device_key, other_key, other_key)
    report = check_journal(image, [forge.raw_public(device_key)], all_signatures=True)
    assert forge.kid_of(other_key) in report.trusted_kids
    assert report.signatures_checked == report.checkpoints
    # Newest per run: the old key's checkpoint over the rotation, and the newest by the new key.
    newest = check_journal(image, [forge.raw_public(device_key)])
    assert forge.kid_of(other_key) in newest.trusted_kids
    assert newest.signatures_checked == 2 and newest.signatures_vouched == newest.checkpoints - 2


def chained_run_with_a_bad_signature(key, bad_at):
    """Four signed commits; the writer put a wrong signature on commit `bad_at`,
    and the chain went on over those bytes (nothing was altered afterwards)."""
    j = forge.Journal("pos-7", 8192, 6)
    j.commit([(forge.BOOT, {"reason": "init"})], key)
    bad = None
    for n in range(1, 4):
        checkpoint = j.commit([(forge.TRANSACTION, forge.sample_txn(n))], key)[-1]
        if n == bad_at:
            checkpoint.payload["sig"] = bytes(64)
            bad = checkpoint
    return j.render(), bad


def test_a_bad_signature_inside_a_run_is_vouched_for_unless_all_signatures(device_key):
    """SPEC 3.6.2: what each mode can detect.  The newest signature vouches for
    every byte before it, so a bad signature the writer itself wrote inside an
    intact run is named only by --all-signatures."""
    image, bad = chained_run_with_a_bad_signature(device_key, bad_at=2)
    pub = [forge.raw_public(device_key)]
    newest = verify_journal(image, pub)
    assert newest.ok and newest.signatures_checked == 1
    audit = verify_journal(image, pub, all_signatures=True)
    assert audit.kinds() == ["BadSignature"] and audit.findings[0].seq == bad.seq


def test_a_bad_newest_signature_is_found_in_both_modes(device_key):
    image, bad = chained_run_with_a_bad_signature(device_key, bad_at=3)
    pub = [forge.raw_public(device_key)]
    for all_signatures in (False, True):
        report = verify_journal(image, pub, all_signatures=all_signatures)
        assert report.kinds() == ["BadSignature"] and report.findings[0].seq == bad.seq


def test_a_finding_ends_the_run_so_the_signature_before_it_is_checked(device_key):
    """A cut in the chain (here a sequence gap) ends a run: the newest signature
    before the cut is checked, whatever comes after it."""
    image, bad = chained_run_with_a_bad_signature(device_key, bad_at=2)
    model = forge.Journal.parse(image)
    seg, i = next((s, i) for s in model.segments for i, r in enumerate(s.records) if r.seq == bad.seq + 1)
    del seg.records[i]                       # the record after the bad checkpoint: the chain is cut there
    report = verify_journal(model.render(), [forge.raw_public(device_key)])
    assert report.kinds()[0] == "BadSignature" and report.findings[0].seq == bad.seq
    assert "SequenceGap" in report.kinds()


def test_old_key_after_a_rotation_is_the_wrong_key(device_key, other_key):
    with pytest.raises(errors.WrongKey):
        check_journal(rotation_journal(device_key, other_key, device_key), [forge.raw_public(device_key)])


def test_trusted_keys_passed_in_are_not_changed_by_a_rotation(device_key, other_key):
    keys = [forge.raw_public(device_key)]
    check_journal(rotation_journal(device_key, other_key, other_key), keys)
    assert keys == [forge.raw_public(device_key)]


def test_no_trusted_key_means_unknown_key(device_key):
    image = forged(device_key, [(2, True, None, None)])
    with pytest.raises(errors.UnknownKey):
        check_journal(image, [])
