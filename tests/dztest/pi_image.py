"""A synthetic Raspberry Pi OS-style image, built with Debian's own tools.

MBR (sfdisk), partition 1 FAT32 "bootfs" (mkfs.fat) with config.txt and
cmdline.txt as Raspberry Pi OS ships them, partition 2 ext4 "rootfs"
(mkfs.ext4 -d) with an /etc and a /var/lib.  Sizes are parameters: the tests
use small ones, the bench a realistic one.
"""

import os
import shutil
import subprocess

import pytest

MIB = 1 << 20
CMDLINE = ("console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 "
           "fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n")
CONFIG = "# Raspberry Pi OS config.txt\narm_64bit=1\ndtparam=audio=on\ncamera_auto_detect=1\n"


def tools_available():
    return all(shutil.which(t) or os.path.exists("/usr/sbin/" + t) or os.path.exists("/sbin/" + t)
               for t in ("sfdisk", "mkfs.fat", "mkfs.ext4", "debugfs"))


def need_tools():
    if not tools_available():
        if os.environ.get("CI"):
            raise AssertionError("sfdisk, mkfs.fat, mkfs.ext4, debugfs missing: run scripts/setup.sh")
        pytest.skip("image tools missing (apt install fdisk dosfstools e2fsprogs)")


def _run(*argv):
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    subprocess.run(argv, check=True, capture_output=True, env=env)


def build_pi_image(path, boot_mib=64, root_mib=32, root_files=None, fill_root_mib=0):
    """Write the image at `path`; return {"boot": (offset, size), "root": (offset, size)}."""
    start = 1 * MIB
    boot = (start, boot_mib * MIB)
    root = (start + boot_mib * MIB, root_mib * MIB)
    total = root[0] + root[1]
    with open(path, "wb") as f:
        f.truncate(total)
    layout = ("label: dos\nlabel-id: 0x4e639091\n"
              "start=%d, size=%d, type=c\nstart=%d, size=%d, type=83\n"
              % (boot[0] // 512, boot[1] // 512, root[0] // 512, root[1] // 512))
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    subprocess.run(["sfdisk", "--quiet", path], input=layout.encode(), check=True,
                   capture_output=True, env=env)
    _run("mkfs.fat", "-F", "32", "-n", "bootfs", "--offset", str(boot[0] // 512), path,
         str(boot[1] // 1024))
    tree = path + ".rootfs"
    os.makedirs(os.path.join(tree, "etc", "systemd", "system"), exist_ok=True)
    os.makedirs(os.path.join(tree, "var", "lib"), exist_ok=True)
    with open(os.path.join(tree, "etc", "hostname"), "w") as f:
        f.write("raspberrypi\n")
    for rel, data in (root_files or {}).items():
        os.makedirs(os.path.dirname(os.path.join(tree, rel)), exist_ok=True)
        with open(os.path.join(tree, rel), "wb") as f:
            f.write(data)
    if fill_root_mib:
        with open(os.path.join(tree, "var", "lib", "payload.bin"), "wb") as f:
            f.write(os.urandom(fill_root_mib * MIB))
    _run("mkfs.ext4", "-q", "-F", "-L", "rootfs", "-d", tree, "-E", "offset=%d" % root[0], path,
         "%dk" % (root[1] // 1024))
    shutil.rmtree(tree)
    from pyfatfs.PyFatFS import PyFatFS
    fs = PyFatFS(path, offset=boot[0])
    try:
        fs.writetext("/cmdline.txt", CMDLINE)
        fs.writetext("/config.txt", CONFIG)
    finally:
        fs.close()
    return {"boot": boot, "root": root, "size": total}
