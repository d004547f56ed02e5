"""`daozhang device pull --image`, skip-if-same, and a segment that changes mid-pull."""

import json
import os

import pytest

from daozhang.agent.core.service.service_session import DeviceSession
from daozhang.signing import ed25519_verify
from daozhang.cli.main import main
from daozhang.host_tools.usb import pull as pulling
from daozhang.host_tools.usb.service_client import ServiceClient
from dztest.usb import MemoryJournal, MemoryTransport, write_key_pair, write_random_journal

SEG = 8192
COUNT = 6
MIB = 1 << 20


class _Report:
    def __init__(self, findings=()):
        self.findings = list(findings)
        self.ok = not self.findings


def _run(argv):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    return exit_.value.code


@pytest.fixture
def image(tmp_path):
    """A 'card image': 1 MiB of partition table and filesystem, the journal, more bytes."""
    journal = write_random_journal(str(tmp_path / "j.bin"), SEG, COUNT, seed=9)
    path = str(tmp_path / "card.img")
    with open(path, "wb") as f:
        f.write(b"\x5a" * MIB + journal + b"\xa5" * 5000)
    return path, journal


def test_image_pull_at_an_offset_then_skip_then_one_changed_segment(image, tmp_path, capsys, monkeypatch):
    path, journal = image
    write_key_pair(str(tmp_path / "device"))
    monkeypatch.setattr(pulling, "verify_pulled_journal", lambda p, keys: _Report())
    out_dir = str(tmp_path / "out")
    argv = ["device", "pull", "--image", path, "--offset", str(MIB), "--out", out_dir,
            "--device-pubkey", str(tmp_path / "device.pub")]
    assert _run(argv) == 0
    with open(os.path.join(out_dir, "journal.bin"), "rb") as f:
        assert f.read() == journal
    assert "6 segments pulled, 0 unchanged" in capsys.readouterr().out

    assert _run(argv + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (result["pulled_segments"], result["skipped_segments"]) == (0, COUNT)

    with open(path, "r+b") as f:  # the terminal wrote into segment 4 since
        f.seek(MIB + 4096 + 4 * SEG + 100)
        f.write(b"new record bytes")
    assert _run(argv + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (result["pulled_segments"], result["skipped_segments"]) == (1, COUNT - 1)
    with open(os.path.join(out_dir, "journal.bin"), "rb") as f, open(path, "rb") as g:
        g.seek(MIB)
        assert f.read() == g.read(len(journal))


def test_image_usage_and_io_errors_exit_2(image, tmp_path, capsys):
    path, _ = image
    out_dir = str(tmp_path / "out")
    assert _run(["device", "pull", "--image", path, "--out", out_dir]) == 2  # offset 0: no superblock
    assert "superblock" in capsys.readouterr().err
    assert _run(["device", "pull", "--out", out_dir]) == 2
    assert "exactly one of --port" in capsys.readouterr().err
    # The journal from the superblock would run past the end of the image.
    with open(path, "r+b") as f:
        f.truncate(MIB + 4096 + SEG)
    assert _run(["device", "pull", "--image", path, "--offset", str(MIB), "--out", out_dir]) == 2
    assert "the journal needs" in capsys.readouterr().err


def test_real_journal_from_an_image_verifies_then_a_flipped_byte_is_found(tmp_path, capsys):
    from daozhang.agent.journal_file import JournalFile, create_journal
    from daozhang.signing import load_signer
    write_key_pair(str(tmp_path / "device"))
    journal_path = str(tmp_path / "journal")
    create_journal(journal_path, "pos-usb-7", size=4096 + 4 * SEG, segment_size=SEG)
    for _ in range(3):  # each open commits a signed boot record
        JournalFile.open(journal_path, load_signer(str(tmp_path / "device.key"))).close()
    argv = ["device", "pull", "--image", journal_path, "--out", str(tmp_path / "out"),
            "--device-pubkey", str(tmp_path / "device.pub")]
    assert _run(argv) == 0
    assert "journal intact" in capsys.readouterr().out

    with open(journal_path, "r+b") as f:  # a byte inside the first record
        f.seek(4096 + 96 + 12)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x01]))
    assert _run(argv) == 1
    out = capsys.readouterr()
    assert "journal NOT intact" in out.out


def test_a_segment_that_changes_while_pulled_is_pulled_again(tmp_path):
    data = bytearray(os.urandom(4096 + SEG * 3))
    journal = MemoryJournal(bytes(data), SEG, 3)
    tech = write_key_pair(str(tmp_path / "tech"))
    session = DeviceSession("dev-1", journal, ed25519_verify,
                            [tech.public_key().public_bytes_raw()], os.urandom,
                            callbacks={"alerts": lambda: [], "health": lambda: {}})
    changed = []

    def agent_appends(offset, length):
        # Hashed, half pulled: then the agent writes into segment 1's second half.
        if offset == 4096 + SEG + 4096 and not changed:
            data[4096 + SEG + 5000:4096 + SEG + 5010] = b"0123456789"
            journal.data = bytes(data)
            changed.append(offset)

    journal.on_read = agent_appends
    client = ServiceClient(MemoryTransport(session))
    info = client.info()
    client.authenticate(tech)
    result = pulling.pull_journal(pulling.PortSource(client, info, chunk=4096), str(tmp_path / "out"))
    assert changed
    assert result.retried_segments == 1
    with open(os.path.join(str(tmp_path / "out"), "journal.bin"), "rb") as f:
        assert f.read() == bytes(data)
