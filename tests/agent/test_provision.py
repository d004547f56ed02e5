"""`daozhang device provision`, boards and agent.toml: what is written, what is refused."""

import os
import stat

import pytest

from daozhang.agent.config import load_agent_config
from daozhang.agent.core.errors import LocalError
from daozhang.agent.journal_file import read_geometry
from daozhang.signing import fingerprint, generate_keypair, load_public_key, raw_public
from daozhang.boards.load import BoardError, available_boards, load_board
from dztest.agent_daemon import PROFILE


@pytest.fixture
def keys(tmp_path):
    generate_keypair(str(tmp_path / "backend"))
    generate_keypair(str(tmp_path / "tech"))
    return tmp_path


class Run:
    def __init__(self, exit_code, output):
        self.exit_code = exit_code
        self.output = output


@pytest.fixture
def invoke(run_main):
    """The real entry point; a Run with exit code and all output."""
    return lambda *args: Run(*run_main(*args))


def base_args(tmp, out="dev", board="rpi4", profile=PROFILE):
    return ["device", "provision", "--board", board, "--device-id", "pos-0001", "--profile", profile,
            "--backend-pubkey", str(tmp / "backend.pub"), "--technician-pubkey", str(tmp / "tech.pub"),
            "--out", str(tmp / out), "--journal-size", "1MiB", "--segment-size", "64KiB"]


def test_provision_writes_key_config_and_journal(invoke, keys):
    result = invoke(*base_args(keys))
    assert result.exit_code == 0, result.output
    dev = keys / "dev"
    assert stat.S_IMODE(os.stat(dev / "device.key").st_mode) == 0o600
    pub = raw_public(load_public_key(str(dev / "device.pub")))
    assert pub.hex() in result.output and fingerprint(pub) in result.output
    cfg = load_agent_config(str(dev / "agent.toml"))
    assert cfg["device_id"] == "pos-0001" and cfg["board"] == "rpi4"
    assert cfg["journal"]["path"] == str(dev / "journal.dzj")
    assert read_geometry(cfg["journal"]["path"]) == (65536, 15)
    assert cfg["intake"] == {"socket": "/run/daozhang/intake.sock", "group": "daozhang-pos", "mode": 0o660}
    assert cfg["service_port"]["device"] == "/dev/ttyGS0"
    assert cfg["outputs"]["led"]["line"] == 17
    assert os.path.exists(cfg["technician_pubkeys"][0])
    # A second run never overwrites a provisioned device.
    again = invoke(*base_args(keys))
    assert again.exit_code == 2 and "exists" in again.output


def test_shipped_boards_load():
    assert {"rpi4", "generic-linux"} <= set(available_boards())
    for name in available_boards():
        board = load_board(name)
        assert board["journal"]["size"] >= 2 * board["journal"]["segment_size"]


@pytest.mark.parametrize("edit,key", [
    (("segment_size = \"1MiB\"", "segment_size = \"1000\""), "journal.segment_size"),
    (("mode = \"0660\"", "mode = \"0666\""), "intake.mode"),
    (("line = 17", "line = \"seventeen\""), "outputs.led.line"),
    (("[key]", "[key]\ncolour = 1"), "key.colour"),
])
def test_invalid_board_names_file_and_key(tmp_path, edit, key):
    with open(load_board("rpi4")["path"]) as f:
        text = f.read()
    assert edit[0] in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(BoardError) as info:
        load_board(str(path))
    assert str(path) in str(info.value) and key in str(info.value)


def test_invalid_profile_is_refused_before_anything_is_written(invoke, keys, tmp_path):
    bad = tmp_path / "m.toml"
    with open(PROFILE) as f:
        bad.write_text(f.read().replace('mcc = "5812"', 'mcc = "58"'))
    result = invoke(*base_args(keys, profile=str(bad)))
    assert result.exit_code == 2 and str(bad) in result.output and "mcc" in result.output
    assert not (keys / "dev" / "device.key").exists()


def test_unknown_board_and_bad_key_file(invoke, keys):
    result = invoke(*base_args(keys, board="toaster"))
    assert result.exit_code == 2 and "rpi4" in result.output
    (keys / "junk.pub").write_text("not a key")
    args = base_args(keys)
    args[args.index("--backend-pubkey") + 1] = str(keys / "junk.pub")
    result = invoke(*args)
    assert result.exit_code == 2 and "--backend-pubkey" in result.output


@pytest.mark.parametrize("text,key", [
    ("[device]\nid = \"a\"\nkey = \"k\"\nprofile = \"p\"\n[journal]\npath = \"j\"\n[intake]\nsocket = \"s\"\nmode = \"0777\"\n", "intake.mode"),
    ("[device]\nid = \"a\"\nkey = \"k\"\nprofile = \"p\"\n[journal]\npath = \"j\"\n", "intake.socket"),
    ("[device]\nid = \"a\"\nkey = \"k\"\nprofile = \"p\"\ncolor = 1\n", "device.color"),
    ("[device\n", "(syntax)"),
])
def test_invalid_agent_config_names_file_and_key(tmp_path, text, key):
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(LocalError) as info:
        load_agent_config(str(path))
    assert str(path) in str(info.value) and key in str(info.value)
