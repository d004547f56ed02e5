"""Stage the portable core as the package tree a MicroPython manifest freezes.

    python firmware/stage.py   # writes firmware/build/daozhang/{agent/core/**,firmware}/*.py and build/main.py

The repository keeps the core at agent/core/ and the board code at firmware/
(installed on CPython as daozhang.agent.core and daozhang.firmware); a frozen
firmware needs the same import paths, so this copies both under
firmware/build/daozhang/ with the package __init__ files, and writes the
board's boot script build/main.py (firmware/board_main.py: it runs
daozhang.firmware.main.main()).
"""

import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORE = os.path.join(HERE, "..", "agent", "core")


# Not modules of the package: the build script, this file, and the boot
# script (frozen as `main`, copied by `device flash` as /main.py).
HOST_ONLY = ("manifest.py", "stage.py", "board_main.py")
BOOT = os.path.join(HERE, "board_main.py")


def _copy(src, target, skip=()):
    os.makedirs(target)
    names = sorted(n for n in os.listdir(src) if n.endswith(".py") and n not in skip)
    for name in names:
        shutil.copyfile(os.path.join(src, name), os.path.join(target, name))
    return names


def _copy_core(target):
    """The core and its packages (journal/, sync/, ...), each with its __init__.py."""
    names = []
    for base, dirs, files in os.walk(CORE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel = os.path.relpath(base, CORE)
        names += [os.path.join(rel, n) if rel != "." else n for n in _copy(base, os.path.join(target, rel))]
    return names


def stage(build=os.path.join(HERE, "build")):
    target = os.path.join(build, "daozhang", "agent", "core")
    if os.path.isdir(os.path.join(build, "daozhang")):
        shutil.rmtree(os.path.join(build, "daozhang"))
    names = _copy_core(target)
    names += _copy(HERE, os.path.join(build, "daozhang", "firmware"), HOST_ONLY)
    for package in (os.path.join(build, "daozhang"), os.path.join(build, "daozhang", "agent")):
        open(os.path.join(package, "__init__.py"), "w").close()
    shutil.copyfile(BOOT, os.path.join(build, "main.py"))
    return target, names


if __name__ == "__main__":
    where, copied = stage()
    print("staged %d core and firmware modules under %s" % (len(copied), os.path.dirname(os.path.dirname(where))))
    sys.exit(0)
