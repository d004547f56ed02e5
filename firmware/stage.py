"""Stage the portable core as the package tree a MicroPython manifest freezes.

    python firmware/stage.py            # writes firmware/build/daozhang/agent/core/*.py

The repository keeps the core at agent/core/ (installed on CPython as
daozhang.agent.core); a frozen firmware needs the same import path, so this
copies it under firmware/build/daozhang/ with the package __init__ files.
"""

import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORE = os.path.join(HERE, "..", "agent", "core")


def stage(build=os.path.join(HERE, "build")):
    target = os.path.join(build, "daozhang", "agent", "core")
    if os.path.isdir(os.path.join(build, "daozhang")):
        shutil.rmtree(os.path.join(build, "daozhang"))
    os.makedirs(target)
    for package in (os.path.join(build, "daozhang"), os.path.join(build, "daozhang", "agent")):
        open(os.path.join(package, "__init__.py"), "w").close()
    names = sorted(n for n in os.listdir(CORE) if n.endswith(".py"))
    for name in names:
        shutil.copyfile(os.path.join(CORE, name), os.path.join(target, name))
    return target, names


if __name__ == "__main__":
    where, copied = stage()
    print("staged %d core modules in %s" % (len(copied), where))
    sys.exit(0)
