"""Write MicroPython firmware to an ESP32 with esptool, as a library.

esptool does the work and its own checks (the flash's MD5 against the data:
"Hash of data verified"); this module routes esptool's progress bar to our
progress_callback, collects its lines, and turns its FatalError into one
line that names the fix.  Only the serial protocol is exercised in the
tests (a fake port: there is no ESP32 here); see README, known limits.
"""

import os

from daozhang.host_tools.flash.errors import BoardError, ImageError

NO_BOOTLOADER = ("no ESP32 bootloader answered on %s: hold BOOT, press and release RESET, release BOOT, "
                 "then run the same command again (esptool: %s)")


def _logger(progress_callback, lines):
    from esptool.logger import TemplateLogger

    class Collect(TemplateLogger):
        def print(self, *args, **kwargs):
            lines.append(" ".join(str(a) for a in args))

        def note(self, message):
            lines.append("Note: " + message)

        def warning(self, message):
            lines.append("Warning: " + message)

        def error(self, message):
            lines.append("Error: " + message)

        def stage(self, finish=False):
            pass

        def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30):
            if progress_callback is not None:
                progress_callback(cur_iter, total_iters)

        def set_verbosity(self, verbosity):
            pass
    return Collect()


def check_firmware(path):
    """An ESP image starts with 0xE9; refuse anything else before touching the board."""
    try:
        with open(path, "rb") as f:
            head = f.read(1)
    except OSError as exc:
        raise ImageError("--firmware %s: cannot read: %s" % (path, exc.strerror)) from None
    if head != b"\xe9":
        raise ImageError("--firmware %s: not an ESP32 firmware image (first byte %r, expected 0xe9): "
                         "download the ESP32_GENERIC_S3 .bin from micropython.org" % (path, head))
    return os.path.getsize(path)


def write_firmware(port, board, firmware, progress_callback=None, connect_attempts=3):
    """Connect, check the chip, write `firmware` at the board's offset, verify, reset."""
    from esp_pylib.logger import EspLog
    from esptool.cmds import attach_flash, detect_chip, reset_chip, run_stub, write_flash
    from esptool.logger import log
    from esptool.util import FatalError
    flash = board.get("flash", {})
    size = check_firmware(firmware)
    lines = []
    previous = EspLog.instance
    log.set_logger(_logger(progress_callback, lines))
    esp = None
    try:
        try:
            esp = detect_chip(port, connect_attempts=connect_attempts)
        except (FatalError, OSError) as exc:
            raise BoardError(NO_BOOTLOADER % (port, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)) \
                from None
        want = flash.get("chip", "").replace("-", "").lower()
        got = esp.CHIP_NAME.replace("-", "").lower()
        if want and got != want:
            raise BoardError("%s is an %s, the board file says %s: wrong --board or wrong port"
                             % (port, esp.CHIP_NAME, flash.get("chip")))
        try:
            esp = run_stub(esp)
            if flash.get("baud"):
                esp.change_baud(int(flash["baud"]))
            attach_flash(esp)
            write_flash(esp, [(int(flash.get("firmware_offset", 0)), firmware)], flash_size="detect")
            reset_chip(esp, "hard-reset")
        except FatalError as exc:
            raise BoardError("%s: writing the firmware failed: %s (press RESET and retry; a second failure "
                             "means a bad cable or a damaged flash)" % (port, exc)) from None
    finally:
        if esp is not None:
            try:
                esp._port.close()
            except Exception:
                pass
        EspLog.instance = previous
    return {"chip": esp.CHIP_NAME, "bytes": size,
            "verified": any("Hash of data verified" in line for line in lines)}
