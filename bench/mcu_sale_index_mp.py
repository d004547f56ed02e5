# Runs under MicroPython 1.29 (tests/mp/run_portable.mjs --script), driven by
# bench/mcu_sale_index.py: the settlement watchdog's cost per event (a sale,
# a tick, the release floor) with SMALL and LARGE unsettled sales held, over
# the firmware's sale index on flash (files on the port's filesystem) and
# over the core's memory index, in the same run; and the live heap each holds.
import gc
import time

from daozhang.agent.core.settlement.sale_index import MemorySaleIndex
from daozhang.agent.core.settlement.watchdog import SettlementWatchdog
from daozhang.firmware.flash_records import DirFiles
from daozhang.firmware.sale_index_flash import FlashSaleIndex
from portable import kit

DAY = 86400000
EVENTS = 200
BASE = kit.CREATED_MS + 400 * DAY


PHASES = [(kind, held) for kind in ("flash", "memory") for held in (P["small"], P["large"])]
state = {}


def build(kind, held):
    gc.collect()
    state["before"] = gc.mem_alloc()
    where = "/bench-%s-%d" % (kind, held)
    index = MemorySaleIndex() if kind == "memory" else FlashSaleIndex(DirFiles(where), b"\x01" * 16)
    wd = SettlementWatchdog(kit.PROFILE, kit.calendar(), index=index)
    for n in range(held):
        wd.handle(("transaction", dict(kit.sale(n, BASE + n * 1000), seq=n + 1)))
    wd.tick(BASE + held * 1000)
    state["wd"] = wd


def measure(kind, held):
    gc.collect()                      # between runPython calls: the garbage is gone
    heap = gc.mem_alloc() - state["before"]
    wd = state.pop("wd")
    t0 = time.ticks_ms()
    for n in range(held, held + EVENTS):
        wd.handle(("transaction", dict(kit.sale(n, BASE + n * 1000), seq=n + 1)))
        wd.tick(BASE + n * 1000 + 1000)
        wd.release_cursor()
    ms = time.ticks_diff(time.ticks_ms(), t0) / EVENTS
    print("RESULT", kind, held, ms, heap)


def step(i):
    kind, held = PHASES[i // 2]
    if i % 2 == 0:
        build(kind, held)
    else:
        measure(kind, held)


def finish():
    pass
