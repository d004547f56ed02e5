"""The portable test modules (tests/portable/test_*.py) pass under
MicroPython 1.29 too.

pytest runs those modules on CPython directly; here the same files run in
MicroPython's WebAssembly port (tests/mp/run_portable.mjs with the tiny
runner tests/mp/portable_runner.py), and every test function CPython
collects must be reported as passed there, one pytest case per function,
so a core change that breaks MicroPython fails CI with the test's name.
"""

import importlib
import os
import re
import subprocess

import pytest

from dztest.micropython import MP_DIR, REPO, MicroPythonFailed, micropython_available

pytestmark = pytest.mark.timeout(600)
PORTABLE = os.path.join(REPO, "tests", "portable")


def _portable_tests():
    out = []
    for name in sorted(os.listdir(PORTABLE)):
        if name.startswith("test_") and name.endswith(".py"):
            module = importlib.import_module("portable." + name[:-3])
            out += ["%s::%s" % (name[:-3], t) for t in sorted(dir(module))
                    if t.startswith("test_") and callable(getattr(module, t))]
    return out


@pytest.fixture(scope="module")
def micropython_results():
    if not micropython_available():
        if os.environ.get("CI"):
            raise MicroPythonFailed("MicroPython port missing: run `npm ci --prefix tests/mp`")
        pytest.skip("MicroPython WebAssembly port not installed (npm install --prefix tests/mp)")
    proc = subprocess.run(["node", os.path.join(MP_DIR, "run_portable.mjs"), REPO],
                          capture_output=True, text=True, timeout=540, cwd=MP_DIR)
    results = {}
    current = None
    for line in proc.stdout.splitlines():
        m = re.match(r"(PASS|FAIL) (\S+)", line)
        if m:
            current = m.group(2)
            results[current] = [m.group(1)]
        elif current is not None:
            results[current].append(line)
    closing = re.search(r"^(\d+) passed, (\d+) failed$", proc.stdout, re.M)
    assert closing, "the MicroPython runner crashed:\n" + proc.stdout[-3000:] + proc.stderr[-3000:]
    return results


@pytest.mark.parametrize("test_id", _portable_tests())
def test_passes_on_micropython(micropython_results, test_id):
    module = test_id.split("::")[0]
    if module in micropython_results:        # the runner's "FAIL module (import)"
        pytest.fail("MicroPython could not import %s:\n%s" % (module, "\n".join(micropython_results[module][1:])))
    assert test_id in micropython_results, "MicroPython did not run " + test_id
    status = micropython_results[test_id]
    assert status[0] == "PASS", "on MicroPython:\n" + "\n".join(status[1:])
