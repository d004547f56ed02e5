"""`daozhang device flash`: put an OS image and a provisioned device on a terminal.

Linux boards (rpi4, generic-linux): --image --target [--bmap] [--provision
--wheelhouse].  MicroPython boards (esp32s3): --port [--firmware] --provision.
`--check --target` re-reads a flashed card.  The work is host_tools/flash/;
this file parses options, draws the bar (rich, only on a TTY) and prints.
"""

import json
import sys
import time

import click

from daozhang.agent.core.errors import LocalError
from daozhang.boards.load import load_board

EXIT_HELP = ("Exit codes: 0 written and verified (or --check found the card as flashed), 1 a finding "
             "(read-back differs, the card was changed), 2 a usage or I/O error (nothing written "
             "when the input was bad).")

STAGES = {"write": "writing", "verify": "reading back", "provision": "provisioning",
          "firmware": "firmware", "copy": "copying"}


class _Bars:
    """One rich bar per stage on a TTY (bytes, rate, time left); nothing otherwise."""

    def __init__(self, enabled):
        self.bar = None
        self.tasks = {}
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                       TimeRemainingColumn, TransferSpeedColumn)
            self.bar = Progress(TextColumn("{task.description:<13}"), BarColumn(), DownloadColumn(),
                                TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
            self.bar.start()

    def __call__(self, stage, done, total):
        if self.bar is None:
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(STAGES.get(stage, stage), total=total)
        self.bar.update(self.tasks[stage], completed=done, total=total)

    def stop(self):
        if self.bar is not None:
            self.bar.stop()


def _size(n):
    from daozhang.host_tools.flash.safety import human
    return human(n)


def _emit(as_json, report, lines):
    if as_json:
        click.echo(json.dumps(report, sort_keys=True))
    else:
        for label, text in lines:
            click.echo("%-11s%s" % (label, text))


def _device_line(dev):
    return "%s, key fingerprint %s, broker %s" % (dev["device_id"], dev["fingerprint"] or "?",
                                                 dev["broker"] or "none (journaling only)")


def _flash_linux(b, image, target, bmap, provision, wheelhouse, force, as_json):
    from daozhang.host_tools.flash.linux import flash_card
    if not image or not target:
        raise LocalError("--board %s writes an OS image: give --image OS.img[.xz|.gz|.zst] and "
                         "--target /dev/sdX (or a file)" % b["name"])
    bars = _Bars(not as_json)
    start = time.monotonic()
    try:
        report = flash_card(image, target, b, provision_dir=provision, wheelhouse=wheelhouse,
                            bmap_path=bmap, force=force, progress=bars)
    finally:
        bars.stop()
    seconds = max(time.monotonic() - start, 1e-6)
    report["seconds"] = round(seconds, 3)
    lines = [("board", "%s (%s)" % (b["name"], b["description"])),
             ("wrote", "%d bytes of %s to %s in %.1f s (%.1f MiB/s)%s"
              % (report["written"], image, target, seconds, report["written"] / seconds / (1 << 20),
                 ", only the block map's ranges" if bmap else "")),
             ("verified", "read back: identical to the image")]
    for reason in report["forced_past"]:
        lines.append(("forced", "written despite: %s" % reason))
    if report["provisioned"]:
        lines.append(("device", _device_line(report["provisioned"])))
        lines.append(("first boot", "installs daozhang offline from %d wheel(s) into /opt/daozhang, puts "
                      "the state in %s (key 0600), enables daozhang-agent.service"
                      % (len(report["wheels"]), b["state_dir"])))
    else:
        lines.append(("device", "not provisioned (no --provision): a plain OS image"))
    _emit(as_json, report, lines)


def _check(target, image, as_json):
    from daozhang.host_tools.flash.check import check_card
    bars = _Bars(not as_json)
    try:
        r = check_card(target, image=image, progress_callback=lambda d, t: bars("verify", d, t))
    finally:
        bars.stop()
    p = r["provisioning"]
    match = {None: "not compared (add --image OS.img to compare)", True: "matches --image %s" % image,
             False: "DIFFERS from --image %s" % image}[r["image_match"]]
    lines = [("card", "%s: flashed %s from %s (board %s)" % (target, r["flashed_at"], r["image"], r["board"])),
             ("contents", "%d ranges, %s re-read: %s" % (r["ranges_checked"], _size(r["bytes_checked"]),
                                                         "as flashed" if not any("differ" in f for f in r["findings"])
                                                         else "CHANGED")),
             ("image", match),
             ("device", _device_line(p) if p else "none found"),
             ("state", r["state"])]
    for note in r["notes"]:
        lines.append(("note", note))
    for finding in r["findings"]:
        lines.append(("finding", finding))
    lines.append(("result", "OK" if not r["findings"] else "%d finding(s)" % len(r["findings"])))
    _emit(as_json, r, lines)
    if r["findings"]:
        sys.exit(1)


def _flash_mcu(b, port, firmware, provision, as_json):
    from daozhang.host_tools.flash.mcu import flash_mcu
    if not provision:
        raise LocalError("--board %s: give --provision DIR (from `daozhang device provision --board %s`)"
                         % (b["name"], b["name"]))
    port = port or b["flash"].get("port")
    bars = _Bars(not as_json)
    try:
        r = flash_mcu(port, b, provision, firmware=firmware, progress=bars)
    finally:
        bars.stop()
    lines = [("board", "%s on %s" % (b["name"], port))]
    if r["firmware"]:
        lines.append(("firmware", "%s: %d bytes written, %s" % (
            r["firmware"]["chip"], r["firmware"]["bytes"],
            "hash of data verified" if r["firmware"]["verified"] else "NOT verified by esptool")))
    lines.append(("files", "%d copied (%s), %d unchanged and skipped; every file's SHA-256 checked on the board"
                  % (len(r["copied"]), _size(r["bytes"]), len(r["skipped"]))))
    if r["journal"]:
        lines.append(("journal", "%s (%s) %s on the board" % (r["journal"]["path"], _size(r["journal"]["size"]),
                                                             r["journal"]["state"])))
    lines.append(("device", _device_line(r["device"])))
    _emit(as_json, r, lines)


@click.command("flash", epilog=EXIT_HELP)
@click.option("--board", default=None, help="rpi4, generic-linux (an OS image) or esp32s3 (MicroPython).")
@click.option("--image", type=click.Path(dir_okay=False), default=None,
              help="OS image: .img, .img.gz, .img.xz or .img.zst.")
@click.option("--target", default=None, help="The card (/dev/sdX, /dev/mmcblk0) or an image file to write.")
@click.option("--bmap", type=click.Path(dir_okay=False), default=None,
              help="bmaptool block map of --image: write and check only the mapped ranges.")
@click.option("--provision", "provision", type=click.Path(file_okay=False), default=None,
              help="A provisioned device dir (`daozhang device provision --out DIR`).")
@click.option("--wheelhouse", type=click.Path(file_okay=False), default=None,
              help="Wheels of daozhang and its dependencies, for the offline install on first boot.")
@click.option("--port", default=None, help="MicroPython boards: the serial port (default: the board file's).")
@click.option("--firmware", type=click.Path(dir_okay=False), default=None,
              help="MicroPython boards: a MicroPython .bin to write first (esptool).")
@click.option("--check", is_flag=True, help="Re-read a flashed --target and report what it carries.")
@click.option("--force", is_flag=True, help="Write a target that is mounted, the running system's or too big.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def flash(board, image, target, bmap, provision, wheelhouse, port, firmware, check, force, as_json):
    """Write an OS image and a provisioned device to a terminal, and verify it.

    \b
    Pi card:   daozhang device flash --board rpi4 --image raspios.img.xz --target /dev/sdb \\
                   --provision pos-0042/ --wheelhouse wheels/
    ESP32-S3:  daozhang device flash --board esp32s3 --port /dev/ttyACM0 --provision mcu-0007/
    Check:     daozhang device flash --check --target /dev/sdb [--image raspios.img.xz]"""
    if check:
        if not target:
            raise LocalError("--check needs --target /dev/sdX (or an image file)")
        return _check(target, image, as_json)
    if not board:
        raise LocalError("give --board (rpi4, generic-linux, esp32s3), or --check --target to read a card")
    b = load_board(board)
    kind = b["flash"].get("kind", "linux-image")
    if kind == "micropython":
        if image or target or bmap or wheelhouse:
            raise LocalError("--board %s is a MicroPython board: it takes --port, --firmware, --provision "
                             "(not --image/--target/--bmap/--wheelhouse)" % b["name"])
        return _flash_mcu(b, port, firmware, provision, as_json)
    if port or firmware:
        raise LocalError("--board %s takes an OS image (--image, --target), not --port/--firmware" % b["name"])
    return _flash_linux(b, image, target, bmap, provision, wheelhouse, force, as_json)
