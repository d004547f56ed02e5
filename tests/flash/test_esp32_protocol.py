"""esptool as a library, up to the serial protocol (no ESP32 here).

The fake port is a pty: esptool opens its slave side as it would
/dev/ttyACM0, a thread reads the master side and records what esptool sends,
and nothing answers, as with a board that is not in its bootloader.  The test
checks that esptool spoke the ROM protocol (SLIP frames carrying the SYNC
command 0x08) and that the error names the fix.  Writing a real image needs
a real chip: README, known limits.
"""

import os
import pty
import threading
import tty

import pytest

from daozhang.boards.load import load_board
from daozhang.host_tools.flash import esp32
from daozhang.host_tools.flash.errors import BoardError, ImageError


def firmware(tmp_path, first=b"\xe9"):
    path = tmp_path / "micropython.bin"
    path.write_bytes(first + b"\x03\x02\x40" + bytes(4092))
    return str(path)


class SilentPort:
    """A pty whose far end records every byte and never answers."""

    def __init__(self):
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.received = bytearray()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self):
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            if not data:
                return
            self.received += data

    def close(self):
        os.close(self.slave)
        os.close(self.master)


def test_no_bootloader_esptool_syncs_then_the_error_names_the_fix(tmp_path):
    port = SilentPort()
    try:
        with pytest.raises(BoardError) as info:
            esp32.write_firmware(port.path, load_board("esp32s3"), firmware(tmp_path), connect_attempts=1)
    finally:
        port.close()
    assert "no ESP32 bootloader answered on %s" % port.path in str(info.value)
    assert "hold BOOT" in str(info.value)
    # SLIP frame: 0xC0, direction 0x00 (request), command 0x08 (SYNC), then the
    # 36-byte sync pattern 07 07 12 20 55 55 ...
    assert b"\xc0\x00\x08\x24\x00" in port.received
    assert b"\x07\x07\x12\x20" + b"\x55" * 32 in port.received


def test_not_a_firmware_image_is_refused_before_the_board(tmp_path):
    with pytest.raises(ImageError, match="not an ESP32 firmware image"):
        esp32.write_firmware("/dev/null", load_board("esp32s3"), firmware(tmp_path, b"PK"))
