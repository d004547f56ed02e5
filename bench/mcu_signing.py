"""The microcontroller terminal's signing and sale cost, on MicroPython's
WebAssembly port, beside CPython's cryptography doing the same signatures.

Prints one JSON line:
  sign_ms_wasm            one Ed25519 signature by firmware/ed25519.py under MicroPython 1.29 (WASM)
  sign_ms_host            the same signature by cryptography (OpenSSL) on CPython, same machine, same run
  sign_vs_host            sign_ms_wasm / sign_ms_host
  sale_ms_wasm            one sale through firmware/main.py: validate, journal, sign, receipt
  sales_per_s_wasm        1000 / sale_ms_wasm
  heap_peak_bytes         live-heap high-water over 100 sales + 100 alerts (target <= 98304)
  est_sign_ms_esp32s3     sign_ms_wasm x ESP32_FACTOR (see docs/DESIGN.md: an estimate, not a measurement)

    python bench/mcu_signing.py
"""

import json
import os
import sys
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from firmware.test_terminal_day import HEAP_BUDGET, run_day  # noqa: E402

# MicroPython on a 240 MHz Xtensa LX7 runs big-int arithmetic roughly 30x
# slower than the WebAssembly port under Node on a desktop core (interpreter
# dispatch ~10x, 32-bit limbs vs 64-bit ~3x).  An estimate until a board is here.
ESP32_FACTOR = 30


def main():
    day = run_day()
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    message = b"s" * 180
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        key.sign(message)
    host_ms = (time.perf_counter() - t0) * 1000 / n
    sign_ms = float(day["SIGN_MS"])
    sale_ms = float(day["SALE_MS"])
    peak = int(day["HEAP_PEAK"].split()[0])
    print(json.dumps({"sign_ms_wasm": sign_ms, "sign_ms_host": round(host_ms, 4),
                      "sign_vs_host": round(sign_ms / host_ms, 1), "sale_ms_wasm": sale_ms,
                      "sales_per_s_wasm": round(1000 / sale_ms, 1), "heap_peak_bytes": peak,
                      "heap_budget_bytes": HEAP_BUDGET,
                      "est_sign_ms_esp32s3": round(sign_ms * ESP32_FACTOR)}))


if __name__ == "__main__":
    main()
