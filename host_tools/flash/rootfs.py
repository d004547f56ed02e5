"""Read a file from the ext4 root partition of a card or image, with e2fsprogs'
debugfs (no mount, read-only: debugfs opens without -w).

`--check` uses it after the terminal's first boot, when the provisioned
state has moved from the FAT partition to <state_dir> on the root.
"""

import os
import subprocess


def read_ext4_file(target, offset, path):
    """The file's bytes, or None if it (or the file system) is not there."""
    env = dict(os.environ, PATH=os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin")
    try:
        proc = subprocess.run(["debugfs", "-R", "cat %s" % path, "%s?offset=%d" % (target, offset)],
                              capture_output=True, env=env)
    except FileNotFoundError:
        return None
    if proc.returncode != 0 or b"File not found" in proc.stderr or b"Bad magic" in proc.stderr:
        return None
    return proc.stdout
