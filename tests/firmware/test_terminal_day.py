"""A day on the shipped ESP32-S3 board's journal (1 MiB, 64 KiB segments),
under MicroPython 1.29: tests/firmware/mp_terminal_day.py takes 100 signed
sales through firmware/main.py's loop on a fake NOR partition, four days
pass, 100 overdue alerts fire and light the LED.  Here CPython checks the
live heap stayed within the 96 KiB budget and the host verifier
(host_tools/verify/journal.py, cryptography's Ed25519) accepts the journal the
board's pure-Python signer wrote."""

import binascii
import os
import subprocess

import pytest

from daozhang.firmware import ed25519
from daozhang.host_tools.verify.journal import verify_journal
from dztest.micropython import MP_DIR, REPO, MicroPythonFailed, micropython_available

pytestmark = pytest.mark.timeout(600)
HEAP_BUDGET = 96 * 1024
SCRIPT = os.path.join(REPO, "tests", "firmware", "mp_terminal_day.py")


def run_day():
    """{name: value} printed by the MicroPython day (boot, SALES sales, 5 ticks:
    firmware/terminal.py raises TICK_ALERTS alerts a tick)."""
    if not micropython_available():
        if os.environ.get("CI"):
            raise MicroPythonFailed("MicroPython port missing: run `npm ci --prefix tests/mp`")
        pytest.skip("MicroPython WebAssembly port not installed (npm install --prefix tests/mp)")
    proc = subprocess.run(["node", os.path.join(MP_DIR, "run_portable.mjs"), REPO, "--script", SCRIPT,
                           "--steps", "106"], capture_output=True, text=True, timeout=540, cwd=MP_DIR)
    if proc.returncode != 0:
        raise MicroPythonFailed(proc.stdout[-2000:] + proc.stderr[-3000:])
    out = {}
    for line in proc.stdout.splitlines():
        name, _, value = line.partition(" ")
        if name == "IMAGE":          # one line per 4 KiB block
            out[name] = out.get(name, "") + value
        else:
            out[name] = value
    return out


def test_day_of_sales_and_alerts_on_the_board():
    day = run_day()
    assert day["FIRING"] == "100"
    assert day["LED"] == "1"
    assert day["DISPLAY"].startswith("100 payments overdue")
    live_peak = int(day["HEAP_PEAK"].split()[0])
    assert 0 < live_peak <= HEAP_BUDGET, day["HEAP_PEAK"]
    public = binascii.unhexlify(day["PUBLIC"])
    assert public == ed25519.public_key(bytes(range(32)))
    image = binascii.unhexlify(day["IMAGE"])
    report = verify_journal(image, [public], all_signatures=True)
    assert report.ok, report.findings[:5]
    assert not verify_journal(image, [ed25519.public_key(b"\x05" * 32)]).ok
