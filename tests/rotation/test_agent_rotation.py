"""Rotating the device key on the terminal (agent/key_rotation.py, SPEC 3.8).

The journal is real (a file with fsync); "crashes" are the two points where
a rotation can be cut: after the new key file is written but before the
rotation is committed, and after the commit but before the key file is
swapped.  Either way the next start leaves one consistent key, and the
independent verifier, trusting only the old key, accepts the journal."""

import os

import pytest
from click.testing import CliRunner

from daozhang.agent.core.journal import checkpoint, record
from daozhang.agent.journal_file import JournalFile, create_journal
from daozhang.agent.key_rotation import finish_interrupted_rotation, rotate_key
from daozhang.signing import FileSigner, generate_keypair, load_signer
from daozhang.cli.main import cli
from daozhang.host_tools.verify.journal import check_journal
from dztest.sync import txn_payload


@pytest.fixture
def device(tmp_path):
    key = str(tmp_path / "device.key")
    old_public = generate_keypair(key[:-4])
    journal = str(tmp_path / "journal.dzj")
    create_journal(journal, "pos-rot-1", size=1 << 20, segment_size=64 << 10)
    append_sales(journal, key, 0, 5)
    return key, journal, old_public


def append_sales(journal, key, start, count):
    with JournalFile.open(journal, FileSigner(key)) as j:
        for i in range(start, start + count):
            j.append(record.TYPE_TRANSACTION, txn_payload(i))


def checkpoint_kids(journal):
    with JournalFile.open(journal, None, boot=False) as j:
        return [bytes(r.payload["kid"]) for r in j.records() if r.type == record.TYPE_CHECKPOINT]


def test_rotation_is_vouched_by_the_old_key_and_followed_by_the_verifier(device):
    key, journal, old_public = device
    old_kid = checkpoint.key_id(old_public)
    old, new, seq = rotate_key(key, journal)
    assert old == old_public and new != old_public
    assert load_signer(key).public_bytes == new
    assert open(key[:-4] + ".pub", "rb").read().startswith(b"-----BEGIN PUBLIC KEY")
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    append_sales(journal, key, 5, 3)
    kids = checkpoint_kids(journal)
    new_kid = checkpoint.key_id(new)
    # The commit holding the rotation is signed by the old key, everything after by the new.
    with JournalFile.open(journal, None, boot=False) as j:
        vouching = next(r.payload["kid"] for r in j.records(from_seq=seq) if r.type == record.TYPE_CHECKPOINT)
    assert bytes(vouching) == old_kid
    assert kids[-1] == new_kid and kids.count(new_kid) >= 3
    assert check_journal(journal, [old_public], all_signatures=True).ok
    assert not os.path.exists(key[:-4] + ".new.key")


def test_a_crash_before_the_commit_undoes_the_rotation(device):
    key, journal, old_public = device
    generate_keypair(key[:-4] + ".new")           # step 1 done, then power lost
    assert finish_interrupted_rotation(key, journal) == "undone"
    assert load_signer(key).public_bytes == old_public
    assert not os.path.exists(key[:-4] + ".new.key")
    append_sales(journal, key, 5, 2)
    assert check_journal(journal, [old_public], all_signatures=True).ok


def test_a_crash_after_the_commit_finishes_the_rotation(device, monkeypatch):
    key, journal, old_public = device
    from daozhang.agent import key_rotation
    monkeypatch.setattr(key_rotation, "_install_new_key", lambda path: None)   # cut before step 3
    _, new, _ = rotate_key(key, journal)
    monkeypatch.undo()
    assert load_signer(key).public_bytes == old_public   # still the old file...
    assert finish_interrupted_rotation(key, journal) == "finished"
    assert load_signer(key).public_bytes == new          # ...until the next start finishes it
    append_sales(journal, key, 5, 2)
    assert checkpoint_kids(journal)[-1] == checkpoint.key_id(new)
    assert check_journal(journal, [old_public], all_signatures=True).ok


def test_nothing_pending_is_a_no_op(device):
    key, journal, _ = device
    assert finish_interrupted_rotation(key, journal) is None


def test_rotation_needs_the_old_key(device):
    key, journal, _ = device
    os.unlink(key)
    from daozhang.agent.key_rotation import RotationRefused
    with pytest.raises(RotationRefused, match="old key must vouch"):
        rotate_key(key, journal)


def test_cli_rotates_and_names_both_fingerprints(tmp_path):
    runner = CliRunner()
    out = tmp_path / "dev"
    keys = tmp_path / "backend"
    assert runner.invoke(cli, ["keys", "new", "--out", str(keys)]).exit_code == 0
    profile = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "merchant.toml")
    result = runner.invoke(cli, ["device", "provision", "--board", "generic-linux", "--device-id",
                                 "pos-rot-2", "--profile", profile, "--backend-pubkey",
                                 str(keys) + ".pub", "--out", str(out), "--journal-size", "1MiB",
                                 "--segment-size", "64KiB"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["device", "rotate-key", "--config", str(out / "agent.toml")])
    assert result.exit_code == 0, result.output
    assert "rotated the journal key at seq" in result.output and "->" in result.output


def test_rotation_is_refused_while_the_agent_holds_the_journal(device):
    from daozhang.agent.storage import JournalBusy
    key, journal, old_public = device
    with JournalFile.open(journal, FileSigner(key), boot=False):      # the running agent
        with pytest.raises(JournalBusy, match="is the agent running"):
            rotate_key(key, journal)
    assert not os.path.exists(key[:-4] + ".new.key")                 # no key file made
    assert load_signer(key).public_bytes == old_public
