"""`daozhang device flash` through the real entry point: what a technician sees,
the exit codes, and the safety refusals on this machine's real root disk."""

import json
import os
import stat

import pytest

from dztest.flash_kit import make_wheelhouse, provision_dir
from dztest.mp_board import PtyBoard
from dztest.pi_image import build_pi_image, need_tools

from daozhang.host_tools.flash import safety
from daozhang.host_tools.flash.errors import TargetRefused


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    need_tools()
    path = str(tmp_path_factory.mktemp("img") / "raspios.img")
    build_pi_image(path)
    return path


def root_block_device():
    """/dev/<name> of the disk holding /, or None when / is not on one (overlay, tmpfs)."""
    dev = os.stat("/").st_dev
    link = "/sys/dev/block/%d:%d" % (os.major(dev), os.minor(dev))
    if not os.path.exists(link):
        return None
    node = "/dev/" + os.path.basename(os.path.realpath(link))
    return node if os.path.exists(node) and stat.S_ISBLK(os.stat(node).st_mode) else None


def test_flash_then_check_a_card(run_main, image, tmp_path):
    prov = provision_dir(tmp_path)
    wheels = make_wheelhouse(tmp_path)
    card = str(tmp_path / "card.img")
    code, out = run_main("device", "flash", "--board", "rpi4", "--image", image, "--target", card,
                         "--provision", prov, "--wheelhouse", wheels)
    assert code == 0, out
    assert "verified   read back: identical to the image" in out
    assert "device     pos-0042, key fingerprint" in out
    assert "enables daozhang-agent.service" in out
    code, out = run_main("device", "flash", "--check", "--target", card, "--image", image)
    assert code == 0, out
    assert "image      matches --image" in out and "result     OK" in out
    assert "waiting for the first boot" in out and "PRIVATE" not in out
    code, out = run_main("device", "flash", "--check", "--target", card, "--json")
    report = json.loads(out)
    assert report["provisioning"]["device_id"] == "pos-0042" and report["findings"] == []
    with open(card, "r+b") as f:                 # damage the root partition
        f.seek(os.path.getsize(card) - 5 * 4096)
        f.write(b"\xff" * 16)
    code, out = run_main("device", "flash", "--check", "--target", card)
    assert code == 1 and "finding    bytes" in out and "differ from what was flashed" in out


def test_bad_input_writes_nothing(run_main, image, tmp_path):
    card = str(tmp_path / "card.img")
    code, out = run_main("device", "flash", "--board", "rpi4", "--image", image, "--target", card,
                         "--provision", str(tmp_path / "nope"), "--wheelhouse", str(tmp_path))
    assert code == 2 and out.startswith("daozhang: --provision") and "daozhang device provision" in out
    prov = provision_dir(tmp_path)
    code, out = run_main("device", "flash", "--board", "rpi4", "--image", image, "--target", card,
                         "--provision", prov, "--wheelhouse", str(tmp_path))
    assert code == 2 and "has no daozhang-*.whl" in out
    assert not os.path.exists(card)


def test_the_running_systems_disk_is_refused(run_main, image):
    disk = root_block_device()
    if disk is None:
        pytest.skip("/ is not on a block device here")
    code, out = run_main("device", "flash", "--board", "rpi4", "--image", image, "--target", disk)
    assert code == 2
    assert "refusing to write --target %s" % disk in out
    assert "holds the running system's root file system" in out
    assert "is mounted on /" in out and "add --force" in out


def test_a_missing_device_is_refused_even_with_force(run_main, image):
    code, out = run_main("device", "flash", "--board", "rpi4", "--image", image, "--target", "/dev/sdzz",
                         "--force")
    assert code == 2 and "--target /dev/sdzz does not exist: is the card in the reader?" in out
    assert not os.path.exists("/dev/sdzz")


def test_a_mounted_partition_and_an_oversized_disk_are_refused():
    disk = root_block_device()
    if disk is None:
        pytest.skip("/ is not on a block device here")
    st = os.stat(disk)
    dev = "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
    mountinfo = "40 27 %s / /media/tech/bootfs rw,relatime - vfat %s rw\n" % (dev, disk)
    other_root = os.makedev(7, 99)
    problems = safety.find_problems(disk, max_size=1 << 20, mountinfo_text=mountinfo, swaps_text="",
                                    root_dev=other_root)
    assert problems[0] == "%s is mounted on /media/tech/bootfs (umount it first)" % disk
    assert "larger than this board's limit of 1.0 MiB" in problems[1]
    with pytest.raises(TargetRefused, match="add --force"):
        safety.check_target(disk, max_size=1 << 20, mountinfo_text=mountinfo, swaps_text="",
                            root_dev=other_root)
    assert safety.check_target(disk, force=True, mountinfo_text=mountinfo, swaps_text="",
                               root_dev=other_root) == problems[:1]


def test_flash_an_esp32s3_over_its_repl(run_main, tmp_path):
    board = PtyBoard()
    try:
        prov = provision_dir(tmp_path, device_id="mcu-0001", board="esp32s3")
        code, out = run_main("device", "flash", "--board", "esp32s3", "--port", board.port, "--provision", prov)
        assert code == 0, out
        assert "0 unchanged and skipped" in out and "journal    /state/journal.dzj (" in out and "created on the board" in out
        code, out = run_main("device", "flash", "--board", "esp32s3", "--port", board.port, "--provision", prov)
        assert code == 0 and "files      0 copied" in out
    finally:
        board.close()


def test_no_repl_on_the_port_names_the_fix(run_main, tmp_path):
    import pty
    import tty
    master, slave = pty.openpty()                  # a port where nothing answers
    tty.setraw(slave)
    name = os.ttyname(slave)
    try:
        prov = provision_dir(tmp_path, device_id="mcu-0002", board="esp32s3")
        code, out = run_main("device", "flash", "--board", "esp32s3", "--port", name, "--provision", prov)
    finally:
        os.close(master)
        os.close(slave)
    assert code == 2
    assert ("daozhang: no MicroPython REPL on %s: is the board in bootloader mode? flash firmware first "
            "with --firmware" % name) in out


def test_progress_bars_on_a_tty_only(image, tmp_path):
    """On a terminal (a pty here) rich draws one bar per step; piped, none."""
    import pty
    import subprocess
    import sys
    daozhang = os.path.join(os.path.dirname(sys.executable), "daozhang")
    master, slave = pty.openpty()
    proc = subprocess.Popen([daozhang, "device", "flash", "--board", "rpi4", "--image", image,
                             "--target", str(tmp_path / "tty.img")], stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    drawn = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        drawn += data
    out, _ = proc.communicate()
    os.close(master)
    assert proc.returncode == 0
    assert b"writing" in drawn and b"reading back" in drawn and b"MB" in drawn
    piped = subprocess.run([daozhang, "device", "flash", "--board", "rpi4", "--image", image,
                            "--target", str(tmp_path / "pipe.img")], capture_output=True)
    assert piped.returncode == 0 and piped.stderr == b""
    assert b"verified   read back: identical" in piped.stdout
