"""The target's partition table, read with util-linux's `sfdisk --json`.

Works on a card (/dev/sdb) and on an image file alike.  Raspberry Pi OS
images are MBR with a FAT boot partition (type 0x0c/0x0b/0x0e) first and an
ext4 root (0x83); GPT images use the EFI or basic-data type for the first.
"""

import json
import os
import subprocess

from daozhang.host_tools.flash.errors import ImageError

FAT_TYPES = {"c", "b", "e", "6", "ef", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
             "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"}
LINUX_TYPES = {"83", "0fc63daf-8483-4772-8e79-3d69d8477de4", "b921b045-1df0-41c3-af44-4c6f280d3fae",
               "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"}


def _env():
    return dict(os.environ, PATH=os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin", LC_ALL="C")


def read_partitions(target):
    """[{"index", "offset", "size", "type"}] in bytes; ImageError if no table."""
    try:
        proc = subprocess.run(["sfdisk", "--json", target], capture_output=True, text=True, env=_env())
    except FileNotFoundError:
        raise ImageError("sfdisk not found: install util-linux's fdisk package (apt install fdisk)") from None
    if proc.returncode != 0:
        raise ImageError("%s: no partition table (sfdisk: %s): is this an OS image?"
                         % (target, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"))
    table = json.loads(proc.stdout)["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    out = []
    for i, p in enumerate(table.get("partitions", []), 1):
        out.append({"index": i, "offset": int(p["start"]) * sector, "size": int(p["size"]) * sector,
                    "type": str(p.get("type", "")).lower()})
    return out


def boot_and_root(target):
    """(boot, root) partitions: the first FAT one and the first Linux one after it."""
    parts = read_partitions(target)
    boot = next((p for p in parts if p["type"] in FAT_TYPES), None)
    if boot is None:
        raise ImageError("%s: no FAT boot partition (types found: %s): only images with a FAT boot "
                         "partition, such as Raspberry Pi OS, can be provisioned"
                         % (target, ", ".join(p["type"] for p in parts) or "none"))
    root = next((p for p in parts if p["type"] in LINUX_TYPES and p["offset"] > boot["offset"]), None)
    return boot, root
