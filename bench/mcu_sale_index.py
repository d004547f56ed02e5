"""The microcontroller's sale index on flash (firmware/sale_index_flash.py),
on MicroPython's WebAssembly port: what one event costs (a sale recorded,
a tick, the release floor) with 300 and with 1,500 unsettled sales held,
beside the core's in-RAM index doing the same work in the same run.

Prints one JSON line:
  flash_ms_small, flash_ms_large     ms an event over the flash index
  flash_large_vs_small               their ratio (flat or logarithmic: near 1)
  memory_ms_small, memory_ms_large   the same over the memory index (its tick
                                     scans every unsettled sale: O(n))
  flash_vs_memory_large              flash / memory at the large size
  flash_heap_large, memory_heap_large  live heap each index holds at the large size (bytes)

    python bench/mcu_sale_index.py [--large N]
"""

import argparse
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MP_DIR = os.path.join(REPO, "tests", "mp")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=300)
    # 300 and 1,500: no doubling of the hash buckets (at 128, 256, ... 2,048 items) falls in the
    # 200 measured events (a doubling rehashes every item once: see --large 2000)
    parser.add_argument("--large", type=int, default=1500)
    args = parser.parse_args()
    script = os.path.join("/tmp", "dz_bench_sale_index_%d.py" % os.getpid())
    with open(os.path.join(REPO, "bench", "mcu_sale_index_mp.py")) as f, open(script, "w") as out:
        out.write("P = %s\n" % json.dumps({"small": args.small, "large": args.large}) + f.read())
    try:
        proc = subprocess.run(["node", os.path.join(MP_DIR, "run_portable.mjs"), REPO, "--script", script,
                               "--steps", "8"],
                              capture_output=True, text=True, cwd=MP_DIR, timeout=1800)
    finally:
        os.unlink(script)
    if proc.returncode != 0:
        sys.exit("daozhang: the MicroPython run failed: " + (proc.stdout + proc.stderr)[-2000:])
    got = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            _, kind, held, ms, heap = line.split()
            got[(kind, int(held))] = (float(ms), int(heap))
    s, l = args.small, args.large
    print(json.dumps({
        "flash_ms_small": got[("flash", s)][0], "flash_ms_large": got[("flash", l)][0],
        "flash_large_vs_small": round(got[("flash", l)][0] / got[("flash", s)][0], 2),
        "memory_ms_small": got[("memory", s)][0], "memory_ms_large": got[("memory", l)][0],
        "flash_vs_memory_large": round(got[("flash", l)][0] / got[("memory", l)][0], 2),
        "flash_heap_large": got[("flash", l)][1], "memory_heap_large": got[("memory", l)][1],
        "held": [s, l], "load_average": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
