"""Flash a Linux board's card: check the target, write, read back, provision.

`flash_card(...)` is the whole job for `daozhang device flash --board rpi4`;
`progress(stage, done, total)` is called with stage "write", "verify",
"provision".  Everything the job needs from outside (provision dir,
wheelhouse, block map) is read and checked before the first byte is
written, so bad input changes nothing on the card.
"""

import datetime
import os

from daozhang.host_tools.flash import bmap as bmap_mod
from daozhang.host_tools.flash import payload, safety, writer
from daozhang.host_tools.flash.fat import FatPartition
from daozhang.host_tools.flash.partitions import boot_and_root
from daozhang.host_tools.flash.provisioning import read_provision_dir
from daozhang.host_tools.flash.source import ImageSource


def _stage(progress, name):
    if progress is None:
        return None
    return lambda done, total: progress(name, done, total)


def check_ranges(target, ranges, hash_name, hole):
    """The written ranges with the boot partition `hole` (offset, size) cut out;
    pieces that lose bytes are re-hashed from the (verified) target."""
    lo, hi = hole
    out = []
    with open(target, "rb") as f:
        for offset, length, digest in ranges:
            end = offset + length
            if end <= lo or offset >= hi:
                out.append([offset, length, digest])
                continue
            for a, b in ((offset, min(end, lo)), (max(offset, hi), end)):
                if b > a:
                    out.append([a, b - a, writer.hash_range(f, a, b - a, hash_name)[0]])
    return out


def flash_card(image, target, board, provision_dir=None, wheelhouse=None, bmap_path=None,
               force=False, progress=None, now=None):
    limit = board.get("flash", {}).get("max_target_size")
    overridden = safety.check_target(target, force=force, max_size=limit)
    state = wheels = summary = None
    if provision_dir is not None:
        summary, state = read_provision_dir(provision_dir)
        if wheelhouse is None:
            from daozhang.agent.core.errors import LocalError
            raise LocalError("--provision needs --wheelhouse DIR: the terminal installs the agent from it "
                             "on first boot, offline (`pip wheel -w DIR /path/to/daozhang` on an arm64 Linux)")
        wheels = payload.read_wheelhouse(wheelhouse)
    block_map = bmap_mod.load_bmap(bmap_path) if bmap_path else None
    with ImageSource(image) as source:
        result = writer.write_image(source, target, block_map, _stage(progress, "write"))
    writer.verify_target(target, result, _stage(progress, "verify"))
    report = {"target": target, "image": image, "written": result.written, "image_size": result.image_size,
              "bmap": bmap_path, "verified": True, "forced_past": overridden, "provisioned": None}
    if state is None:
        return report
    boot, root = boot_and_root(target)
    with FatPartition(target, boot["offset"]) as fat:
        original = fat.walk_hashes(skip=(payload.DIR, "/cmdline.txt"))
    when = now or datetime.datetime.now(datetime.timezone.utc)
    manifest = {
        "format": 1, "image": os.path.basename(image), "image_size": result.image_size,
        "hash": result.hash_name,
        "ranges": check_ranges(target, result.ranges, result.hash_name,
                               (boot["offset"], boot["offset"] + boot["size"])),
        "boot": {"offset": boot["offset"], "size": boot["size"], "files": original},
        "root_offset": root["offset"] if root else None,
        "state_dir": board["state_dir"], "board": board["name"],
        "device": {k: summary[k] for k in ("device_id", "board", "fingerprint", "broker")},
        "flashed_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    payload.install_payload(target, boot, board, state, wheels, manifest, _stage(progress, "provision"))
    writer.drop_cache(target)
    report["provisioned"] = manifest["device"]
    report["wheels"] = sorted(wheels)
    return report
