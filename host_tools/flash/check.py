"""`daozhang device flash --check`: re-read a flashed card and say what is on it.

Reads the manifest the flash left on the boot partition (daozhang/flash.json),
re-hashes every range of the image outside the boot partition and every
original file inside it (after the first boot, a changed root partition is a
note, not a finding: a running system writes it), and reads the provisioning back: from the boot
partition before the first boot, from the root file system (debugfs) after
it.  With --image it also hashes the image over the same ranges, so "this
card carries that image" is checked byte for byte.  No secret is read into
the report: only the device id, the public key's fingerprint and the broker.

`check_card(...)` returns a report; its "findings" list is empty when all is
well (the CLI exits 1 otherwise).
"""

import hashlib
import json

from daozhang.host_tools.flash import payload, writer
from daozhang.host_tools.flash.errors import ImageError
from daozhang.host_tools.flash.fat import FatPartition
from daozhang.host_tools.flash.partitions import boot_and_root
from daozhang.host_tools.flash.provisioning import summary_from_bytes
from daozhang.host_tools.flash.rootfs import read_ext4_file
from daozhang.host_tools.flash.source import ImageSource


def _image_hashes(image, ranges, hash_name):
    """Hash the image stream over the manifest's ranges (ordered, not overlapping)."""
    out = []
    with ImageSource(image) as src:
        at = 0
        for offset, length, _ in ranges:
            at += src.skip(offset - at)

            h = hashlib.new(hash_name)
            left = length
            while left:
                chunk = src.read(min(writer.CHUNK, left))
                if not chunk:
                    break
                h.update(chunk)
                at += len(chunk)
                left -= len(chunk)
            out.append(h.hexdigest())
    return out


def _provisioning(target, fat, manifest):
    state = payload.DIR + "/state/"
    key = manifest["device"].get("fingerprint")
    toml = fat.read(state + "agent.toml")
    pub = None
    where = "missing"
    if toml is not None:
        where = "boot partition, waiting for the first boot"
        pub = fat.read(state + "device.pub")
    elif manifest.get("root_offset") is not None:
        base = manifest["state_dir"].rstrip("/") + "/"
        toml = read_ext4_file(target, manifest["root_offset"], base + "agent.toml")
        pub = read_ext4_file(target, manifest["root_offset"], base + "device.pub")
        where = "installed in %s (first boot done)" % manifest["state_dir"]
    if toml is None:
        return None, where
    found = summary_from_bytes(toml, pub, target)
    found["where"] = where
    found["matches_flash"] = (found["device_id"] == manifest["device"]["device_id"]
                              and (key is None or found["fingerprint"] == key))
    return found, where


def check_card(target, image=None, progress_callback=None):
    boot, root = boot_and_root(target)
    findings = []
    notes = []
    with FatPartition(target, boot["offset"]) as fat:
        raw = fat.read(payload.MANIFEST)
        if raw is None:
            raise ImageError("%s: no %s on the boot partition: this card was not flashed with "
                             "`daozhang device flash --provision`" % (target, payload.MANIFEST))
        manifest = json.loads(raw)
        files = fat.walk_hashes(skip=(payload.DIR, "/cmdline.txt"))
        for path, digest in sorted(manifest["boot"]["files"].items()):
            if files.get(path) != digest:
                findings.append("boot partition %s %s since the flash" % (path, "is missing" if path not in files
                                                                             else "changed"))
        prov, where = _provisioning(target, fat, manifest)
        first_boot_done = fat.exists(payload.DIR + "/firstboot.done")
    ranges = manifest["ranges"]
    total = sum(r[1] for r in ranges)
    done = 0
    in_root = (lambda o, n: root is not None and root["offset"] <= o and o + n <= root["offset"] + root["size"])
    root_changed = 0
    with open(target, "rb") as f:
        for offset, length, digest in ranges:
            got, read = writer.hash_range(f, offset, length, manifest["hash"])
            if got != digest and first_boot_done and in_root(offset, length):
                root_changed += 1                   # a booted system writes its root: expected
            elif got != digest:
                findings.append("bytes %d..%d differ from what was flashed" % (offset, offset + length))
            done += length
            if progress_callback is not None:
                progress_callback(done, total)
    image_match = None
    if image is not None:
        hashes = _image_hashes(image, ranges, manifest["hash"])
        image_match = all(h == r[2] for h, r in zip(hashes, ranges))
        if not image_match:
            findings.append("the card does not carry --image %s (first differing range at byte %d)"
                            % (image, next(r[0] for h, r in zip(hashes, ranges) if h != r[2])))
    if prov is None:
        findings.append("no provisioning found (neither on the boot partition nor in %s)" % manifest["state_dir"])
    elif not prov["matches_flash"]:
        findings.append("the provisioning on the card (device %s, key %s) is not the one flashed (device %s)"
                        % (prov["device_id"], prov["fingerprint"], manifest["device"]["device_id"]))
    if root_changed:
        notes.append("%d range(s) of the root partition changed since the flash, as a booted system's do"
                     % root_changed)
    return {"notes": notes, "target": target, "image": manifest["image"], "flashed_at": manifest["flashed_at"],
            "board": manifest["board"], "image_match": image_match, "ranges_checked": len(ranges),
            "bytes_checked": total, "provisioning": prov, "state": where,
            "first_boot_done": first_boot_done, "findings": findings}
