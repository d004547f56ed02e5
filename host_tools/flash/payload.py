"""Put a provisioned device onto a freshly written Linux card (its FAT boot partition).

Layout on the boot partition (mounted at the board's boot_mount, e.g.
/boot/firmware on Raspberry Pi OS bookworm):

  daozhang/state/*                 the provisioned dir (agent.toml, device.key, ...)
  daozhang/wheels/*.whl            the wheelhouse: daozhang and its dependencies
  daozhang/firstboot.sh            installs all of it on first boot (firstboot.py)
  daozhang/daozhang-agent.service  the unit, with the watchdog
  daozhang/flash.json              what was written: the check manifest, no secrets
  cmdline.txt                      + systemd.run=<boot_mount>/daozhang/firstboot.sh ...
"""

import json
import os

from daozhang.agent.core.errors import LocalError
from daozhang.host_tools.flash import firstboot
from daozhang.host_tools.flash.fat import FatPartition

DIR = "/daozhang"
MANIFEST = DIR + "/flash.json"


def read_wheelhouse(path):
    """{name: bytes} of the .whl files; LocalError unless a daozhang wheel is among them."""
    try:
        names = sorted(n for n in os.listdir(path) if n.endswith(".whl"))
    except OSError as exc:
        raise LocalError("--wheelhouse %s: cannot read: %s" % (path, exc.strerror)) from None
    if not any(n.lower().startswith("daozhang-") for n in names):
        raise LocalError("--wheelhouse %s has no daozhang-*.whl: build it with `pip wheel -w %s "
                         "/path/to/daozhang` on an arm64 Linux (the Pi's architecture)" % (path, path))
    out = {}
    for n in names:
        with open(os.path.join(path, n), "rb") as f:
            out[n] = f.read()
    return out


def install_payload(target, boot, board, state_files, wheels, manifest, progress_callback=None):
    """Write everything into the boot partition at `boot["offset"]`; return the files written."""
    state_dir = board["state_dir"]
    boot_mount = board.get("flash", {}).get("boot_mount", "/boot/firmware")
    items = [(DIR + "/state/" + n, data) for n, data in state_files.items()]
    items += [(DIR + "/wheels/" + n, data) for n, data in wheels.items()]
    items.append((DIR + "/firstboot.sh", firstboot.render_script(state_dir).encode()))
    items.append((DIR + "/daozhang-agent.service",
                  firstboot.render_unit(state_dir, board["watchdog"]["heartbeat_s"]).encode()))
    total = sum(len(d) for _, d in items)
    done = 0
    with FatPartition(target, boot["offset"]) as fat:
        fat.remove_tree(DIR)
        cmdline = fat.read("/cmdline.txt")
        if cmdline is None:
            raise LocalError("%s: the boot partition has no cmdline.txt: not a Raspberry Pi OS image? "
                             "(the first-boot step is started from cmdline.txt)" % target)
        new_cmdline = firstboot.add_to_cmdline(cmdline.decode("utf-8"), boot_mount + DIR + "/firstboot.sh")
        for path, data in items:
            fat.write(path, data)
            done += len(data)
            if progress_callback is not None:
                progress_callback(done, total)
        fat.write("/cmdline.txt", new_cmdline.encode("utf-8"))
        fat.write(MANIFEST, json.dumps(manifest, sort_keys=True, indent=1).encode("utf-8"))
    return [p for p, _ in items] + ["/cmdline.txt", MANIFEST]
