"""Run code under MicroPython 1.29 (its WebAssembly port in Node).

The portable core (agent/core/*.py) is importable there as
daozhang.agent.core, and tests/vectors/* sit under /vectors.
`run_micropython(code)` returns what the code printed, or raises
MicroPythonFailed with MicroPython's traceback.
"""

import os
import shutil
import subprocess
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MP_DIR = os.path.join(REPO, "tests", "mp")


class MicroPythonFailed(AssertionError):
    pass


def micropython_available():
    return shutil.which("node") is not None and os.path.isdir(
        os.path.join(MP_DIR, "node_modules", "@micropython", "micropython-webassembly-pyscript"))


def run_micropython(code, timeout=300):
    if not micropython_available():
        if os.environ.get("CI"):
            raise MicroPythonFailed("MicroPython port missing: run `npm ci --prefix tests/mp`")
        pytest.skip("MicroPython WebAssembly port not installed (npm install --prefix tests/mp)")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(code)
        path = f.name
    try:
        proc = subprocess.run(["node", os.path.join(MP_DIR, "run.mjs"), REPO, path],
                              capture_output=True, text=True, timeout=timeout, cwd=MP_DIR)
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        raise MicroPythonFailed("MicroPython failed:\n" + proc.stdout[-2000:] + proc.stderr[-4000:])
    return proc.stdout
