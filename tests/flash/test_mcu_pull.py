"""`daozhang device pull` reads a MicroPython terminal's journal: same format.

The board (MicroPython's WebAssembly port on a pty) is flashed, its copied
.mpy journal code commits sales, the technician copies the journal file off
with mpremote (`mpremote cp :/state/journal.dzj .`, here mpremote's library
call) and `daozhang device pull --image` reads and verifies it.
"""

import json
import os

from dztest.flash_kit import provision_dir
from dztest.mp_board import PtyBoard

from daozhang.boards.load import load_board
from daozhang.host_tools.flash import board_copy, mcu


def test_pull_a_journal_written_on_the_board(run_main, tmp_path):
    board = PtyBoard()
    try:
        # A small journal: the REPL reads back at a few KiB/s on the WebAssembly port.
        prov = provision_dir(tmp_path, device_id="mcu-0042", board="esp32s3", journal_size="72KiB",
                             segment_size="8KiB")
        mcu.flash_mcu(board.port, load_board("esp32s3"), prov)
        b = board_copy.open_board(board.port)
        try:
            b.exec("import sys\nsys.path.insert(0, '/lib')\nimport micro_journal, flash_storage\n"
                   "j = micro_journal.MicroJournal(flash_storage.FlashStorage('/state/journal.dzj'))\n"
                   "for n in range(20):\n    j.append(1, {'kind': 'sale', 'n': n})\nj.storage.close()\n")
            data = b.t.fs_readfile("/state/journal.dzj")
        finally:
            b.close()
    finally:
        board.close()
    image = tmp_path / "journal.dzj"
    image.write_bytes(data)
    code, out = run_main("device", "pull", "--image", str(image), "--out", str(tmp_path / "pulled"),
                         "--device-pubkey", os.path.join(prov, "device.pub"), "--json")
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    result = [e for e in events if e.get("event") == "result"][-1]
    assert (tmp_path / "pulled" / "journal.bin").read_bytes() == data
    # This board signs nothing (no Ed25519 on MicroPython, no secure element
    # wired here): its commits are a flagged signer outage (SPEC 3.7), which
    # the verifier reports as its only finding; the chain itself is intact.
    assert code == 1, out
    assert [f["kind"] for f in result["findings"]] == ["UnrecoveredOutage"]
    assert result["pulled_bytes"] == len(data)
