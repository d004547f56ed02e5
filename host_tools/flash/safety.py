"""Refuse to overwrite what must not be overwritten, unless --force.

Three refusals, each naming the reason and the override:
  * the target, or one of its partitions, is mounted (or is active swap);
  * it holds the running system's root file system;
  * it is larger than the board file's `[flash] max_target_size` (a 2 TB
    USB disk is not a terminal's SD card: a wrong /dev/sdX is the classic
    way to lose a laptop).
A regular file target is refused only while a loop device uses it.

Everything is read from /proc/self/mountinfo, /proc/swaps and /sys; the
readers take the text as arguments so tests can feed a system they cannot
build (and also run against this machine's real root disk).
"""

import os
import stat

from daozhang.host_tools.flash.errors import TargetRefused

SYS_BLOCK = "/sys/class/block"


def _read(path, default=""):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return default


def mounts(mountinfo_text):
    """[(major:minor, mount point, source)] from /proc/self/mountinfo text."""
    out = []
    for line in mountinfo_text.splitlines():
        parts = line.split()
        if len(parts) < 10 or "-" not in parts:
            continue
        sep = parts.index("-")
        point = parts[4].replace("\\040", " ")
        out.append((parts[2], point, parts[sep + 2]))
    return out


def _dev_name(rdev):
    """sysfs name (sdb, mmcblk0p1) of a device number, or None."""
    link = "/sys/dev/block/%d:%d" % (os.major(rdev), os.minor(rdev))
    return os.path.basename(os.path.realpath(link)) if os.path.exists(link) else None


def disk_family(name, sys_block=SYS_BLOCK):
    """The whole disk a name belongs to and all its partitions: {"M:m": name}."""
    disk = name
    if os.path.exists(os.path.join(sys_block, name, "partition")):
        disk = os.path.basename(os.path.dirname(os.path.realpath(os.path.join(sys_block, name))))
    family = {}
    for n in [disk] + sorted(os.listdir(os.path.join(sys_block, disk))):
        dev = _read(os.path.join(sys_block, disk if n == disk else os.path.join(disk, n), "dev")).strip()
        if dev and (n == disk or os.path.exists(os.path.join(sys_block, disk, n, "partition"))):
            family[dev] = n
    return family


def _loop_users(path, sys_block=SYS_BLOCK):
    real = os.path.realpath(path)
    users = []
    for n in sorted(os.listdir(sys_block)) if os.path.isdir(sys_block) else []:
        backing = _read(os.path.join(sys_block, n, "loop", "backing_file")).strip()
        if backing and os.path.realpath(backing) == real:
            users.append("/dev/" + n)
    return users


def block_size_bytes(name, sys_block=SYS_BLOCK):
    text = _read(os.path.join(sys_block, name, "size")).strip()
    return int(text) * 512 if text.isdigit() else None


def find_problems(target, max_size=None, mountinfo_text=None, swaps_text=None, root_dev=None,
                  sys_block=SYS_BLOCK):
    """Every reason not to write `target`, as one-line strings (empty: safe)."""
    if mountinfo_text is None:
        mountinfo_text = _read("/proc/self/mountinfo")
    if swaps_text is None:
        swaps_text = _read("/proc/swaps")
    if root_dev is None:
        root_dev = os.stat("/").st_dev
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return []                                   # a new image file
    except OSError as exc:
        return ["cannot stat it: %s" % exc.strerror]
    problems = []
    if stat.S_ISREG(st.st_mode):
        for loop in _loop_users(target, sys_block):
            problems.append("it is attached to %s (losetup -d %s first)" % (loop, loop))
        return problems
    if not stat.S_ISBLK(st.st_mode):
        return ["it is neither a block device nor a regular file"]
    name = _dev_name(st.st_rdev)
    family = disk_family(name, sys_block) if name else {"%d:%d" % (os.major(st.st_rdev),
                                                                   os.minor(st.st_rdev)): target}
    for dev, point, source in mounts(mountinfo_text):
        if dev in family:
            problems.append("/dev/%s is mounted on %s (umount it first)" % (family[dev], point))
    swapping = [line.split()[0] for line in swaps_text.splitlines()[1:] if line.strip()]
    for path in swapping:
        try:
            if "%d:%d" % (os.major(os.stat(path).st_rdev), os.minor(os.stat(path).st_rdev)) in family:
                problems.append("%s is in use as swap (swapoff %s first)" % (path, path))
        except OSError:
            pass
    root = "%d:%d" % (os.major(root_dev), os.minor(root_dev))
    if root in family:
        problems.append("it holds the running system's root file system (/dev/%s is /)" % family[root])
    size = block_size_bytes(name, sys_block) if name else None
    if max_size is not None and size is not None and size > max_size:
        problems.append("it is %s, larger than this board's limit of %s (max_target_size in the board "
                        "file): is it really the terminal's card?" % (human(size), human(max_size)))
    return problems


def check_target(target, force=False, **kw):
    """Raise TargetRefused naming every reason, unless force; return the reasons overridden."""
    if target.startswith("/dev/") and not os.path.exists(target):
        # Not overridable: writing would create a plain file on /dev (RAM).
        raise TargetRefused("--target %s does not exist: is the card in the reader? `lsblk` lists the "
                            "disks" % target)
    problems = find_problems(target, **kw)
    if problems and not force:
        raise TargetRefused("refusing to write --target %s: %s. If you are sure, add --force"
                            % (target, "; ".join(problems)))
    return problems


def human(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return "%.1f %s" % (n / size, unit)
    return "%d B" % n
