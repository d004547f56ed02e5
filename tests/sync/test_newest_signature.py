"""SPEC 6.7.1: the backend verifies the newest checkpoint signature of each
chained run by default and every one with all_signatures.  What each mode
catches, and the places a run ends (a key rotation, across messages)."""

import pytest

from daozhang.agent.core.journal import checkpoint, record
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.backend import ingest
from daozhang.backend.store import open_store

from dztest.sync import DEVICE, Pair, make_journal, signer, txn_payload

OLD, ATTACKER = 7, 33
MODES = pytest.mark.parametrize("all_signatures", [False, True], ids=["newest", "all"])


class GarbageSigner:
    """Claims a key's id but signs nothing: what a forger without the key writes."""

    def __init__(self, real):
        self.alg, self.kid, self.public_bytes = real.alg, real.kid, real.public_bytes

    def sign(self, message):
        return bytes(64)


@pytest.fixture
def world(tmp_path):
    path, journal = make_journal(tmp_path, seed=OLD)
    store = open_store(str(tmp_path / "backend.db"))
    yield journal, store
    journal.close()
    store.close()


def all_frames(pair):
    recs, _, _ = pair.reader.read(0, 1 << 20)
    return [r[2] for r in recs]


def checkpoint_seqs(frames):
    return [i for i, f in enumerate(frames) if f[2] == record.TYPE_CHECKPOINT]


def last_good_before_garbage(frames):
    """Index of the last checkpoint before the first one GarbageSigner wrote."""
    cks = checkpoint_seqs(frames)
    bad = next(i for i in cks if record.decode_at(frames[i], 0).payload["sig"] == bytes(64))
    return max(i for i in cks if i < bad)


def sales(journal, start, count):
    for i in range(start, start + count):
        journal.append(record.TYPE_TRANSACTION, txn_payload(i))


def kinds(store):
    return [f["kind"] for f in store.findings()]


def test_newest_mode_verifies_one_signature_per_run_audit_every_one(world, monkeypatch):
    journal, store = world
    sales(journal, 0, 20)                       # one sale per commit: 20 checkpoints
    pair = Pair(journal, store, device_seed=OLD)
    f = all_frames(pair)
    payload = msgs.encode_receipts(DEVICE, f)
    assert len(checkpoint_seqs(f)) >= 20
    calls = []
    real_verify = ingest.ed25519_verify          # ingest's one verifier (daozhang/signing.py)
    monkeypatch.setattr(ingest, "ed25519_verify", lambda *a: calls.append(1) or real_verify(*a))
    newest = ingest.check_batch(DEVICE, signer(OLD).public_bytes, payload)
    assert (len(calls), newest.findings, len(newest.records)) == (1, [], len(f))
    del calls[:]
    audit = ingest.check_batch(DEVICE, signer(OLD).public_bytes, payload, all_signatures=True)
    assert (len(calls), audit.findings, len(audit.records)) == (len(checkpoint_seqs(f)), [], len(f))


@MODES
def test_an_earlier_signature_changed_in_transit_is_found_in_both_modes(world, all_signatures):
    """Its record's hash changes, so the chain breaks right after it: the
    run ends there and it is that run's newest checkpoint, verified."""
    journal, store = world
    sales(journal, 0, 6)
    pair = Pair(journal, store, device_seed=OLD, all_signatures=all_signatures)
    f = all_frames(pair)
    ck = checkpoint_seqs(f)[1]
    rec = record.decode_at(f[ck], 0)
    payload = dict(rec.payload, sig=bytes(64))
    forged = record.encode(rec.type, rec.flags, rec.seq, rec.prev, rec.wall_ms, rec.boot_id,
                           rec.mono_ms, payload)[0]
    pair.ingestor.receipts(DEVICE, msgs.encode_receipts(DEVICE, f[:ck] + [forged] + f[ck + 1:]))
    assert kinds(store) == ["bad_signature"]
    assert store.head(DEVICE)[0] == checkpoint_seqs(f)[0]


@MODES
def test_a_bad_signature_the_key_holder_chained_over_is_seen_only_by_the_audit(world, all_signatures):
    """Only the key holder can chain a valid signature over a bad one (a
    device bug): the newest signature vouches for it; the audit names it."""
    journal, store = world
    sales(journal, 0, 2)
    real = journal.signer
    journal.signer = GarbageSigner(real)
    sales(journal, 2, 1)
    journal.signer = real
    sales(journal, 3, 2)
    pair = Pair(journal, store, device_seed=OLD, all_signatures=all_signatures)
    f = all_frames(pair)
    pair.ingestor.receipts(DEVICE, msgs.encode_receipts(DEVICE, f))
    if all_signatures:
        assert kinds(store) == ["bad_signature"]
        assert store.head(DEVICE)[0] == last_good_before_garbage(f)   # cut after the last good one
    else:
        assert kinds(store) == []
        assert store.head(DEVICE)[0] == len(f) - 1


def forged_rotation(journal):
    """A rotation to the attacker's key under a checkpoint that only claims
    the device's key, then sales the attacker signs: a well-chained run."""
    real = journal.signer
    journal.signer = GarbageSigner(real)
    journal.append(record.TYPE_KEY_ROTATION, {"alg": checkpoint.ALG_ED25519, "kid": signer(ATTACKER).kid,
                                              "pub": signer(ATTACKER).public_bytes})
    journal.signer = signer(ATTACKER)
    sales(journal, 100, 3)


@MODES
def test_a_forged_rotation_in_one_message_is_a_bad_signature(world, all_signatures):
    journal, store = world
    sales(journal, 0, 3)
    forged_rotation(journal)
    pair = Pair(journal, store, device_seed=OLD, all_signatures=all_signatures)
    f = all_frames(pair)
    pair.ingestor.receipts(DEVICE, msgs.encode_receipts(DEVICE, f))
    assert kinds(store) == ["bad_signature"]
    assert bytes(store.device(DEVICE)["public_key"]) == signer(OLD).public_bytes
    assert store.head(DEVICE)[0] == last_good_before_garbage(f)


@MODES
def test_a_forged_rotation_split_across_messages_is_a_bad_signature(world, all_signatures):
    """The rotation record arrives first (stored, pending); the checkpoint
    claiming to vouch for it comes in the next message, with the attacker's."""
    journal, store = world
    sales(journal, 0, 3)
    forged_rotation(journal)
    pair = Pair(journal, store, device_seed=OLD, all_signatures=all_signatures)
    f = all_frames(pair)
    rotation = next(i for i, fr in enumerate(f) if fr[2] == record.TYPE_KEY_ROTATION)
    pair.ingestor.receipts(DEVICE, msgs.encode_receipts(DEVICE, f[:rotation + 1]))
    assert kinds(store) == [] and store.head(DEVICE)[0] == rotation
    pair.ingestor.receipts(DEVICE, msgs.encode_receipts(DEVICE, f[rotation + 1:]))
    assert kinds(store) == ["bad_signature"]
    assert bytes(store.device(DEVICE)["public_key"]) == signer(OLD).public_bytes
    assert store.head(DEVICE)[0] == rotation


@MODES
def test_the_newest_signature_of_each_message_is_checked(world, all_signatures):
    """A run ends at the message's end: a bad newest checkpoint in the second
    message is found even though the first message's head verified."""
    journal, store = world
    sales(journal, 0, 3)
    real = journal.signer
    journal.signer = GarbageSigner(real)
    sales(journal, 3, 1)
    journal.signer = real
    pair = Pair(journal, store, device_seed=OLD, all_signatures=all_signatures)
    f = all_frames(pair)
    cut = last_good_before_garbage(f) + 1
    assert checkpoint_seqs(f)[-1] == len(f) - 1 and record.decode_at(f[-1], 0).payload["sig"] == bytes(64)
    pair.ingestor.receipts(DEVICE, msgs.encode_receipts(DEVICE, f[:cut]))
    pair.ingestor.receipts(DEVICE, msgs.encode_receipts(DEVICE, f[cut:]))
    assert kinds(store) == ["bad_signature"]
    assert store.head(DEVICE)[0] == cut - 1


def test_the_audit_switch_in_the_backend_config(tmp_path):
    from daozhang.backend.config import ConfigError, load_backend_config, new_share_group
    base = '[broker]\nhost = "127.0.0.1"\n[backend]\nkey = "b.key"\ndb = "b.db"\nshare_group = "%s"\n' \
        % new_share_group()
    path = tmp_path / "backend.toml"
    path.write_text(base + "all_signatures = true\n")
    assert load_backend_config(str(path))["backend"]["all_signatures"] is True
    path.write_text(base + 'all_signatures = "yes"\n')
    with pytest.raises(ConfigError, match="backend.all_signatures: expected true or false"):
        load_backend_config(str(path))


def test_the_supervisor_passes_the_audit_switch_to_its_workers():
    from daozhang.backend.workers import Supervisor
    audit = Supervisor("backend.toml", 1, all_signatures=True)
    default = Supervisor("backend.toml", 1)
    try:
        assert "--all-signatures" in audit._argv(0) and "--all-signatures" not in default._argv(0)
    finally:
        audit.close()
        default.close()
