# Runs under MicroPython 1.29 (tests/mp/run_portable.mjs --script), driven by
# tests/firmware/test_terminal_day.py and bench/mcu_signing.py.
#
# The shipped ESP32-S3 board's journal (1 MiB, 64 KiB segments) on a fake
# NOR partition; the firmware loop with the board's pure-Python Ed25519 signer
# takes SALES sales (one run_portable.mjs step each), then four days pass and every one becomes an overdue
# alert (100 active alerts); the LED lights.  Prints the live-heap high-water
# mark (gc.mem_alloc after gc.collect at every step), sign and commit times,
# and the partition's journal area (un-inverted) for the host verifier.
import binascii
import time

from daozhang.agent.core.journal import layout
from daozhang.firmware import alert_store_flash  # noqa: F401  (imported before the base: frozen code on a board)
from daozhang.firmware import ed25519
from daozhang.firmware.main import Loop
from daozhang.firmware.flash_records import DirFiles
from daozhang.firmware.micro_journal import MicroJournal
from daozhang.firmware.sale_index_flash import FlashSaleIndex
from daozhang.firmware.partition_storage import PartitionStorage, format_partition
from daozhang.firmware.terminal import Outputs, Terminal
from portable import kit
from portable.fake_partition import FakePartition

SALES = 100
DAY = 86400000
SEED = bytes(range(32))
base = {}
heap = kit.HeapMark()
mark = heap.mark


sales_ms = [0]


def setup():
    global signer, keygen_ms, sign_ms, clock, led, buzzer, display, now, journal, loop, geo, part
    base["code"] = heap.now()           # the modules: frozen in flash on a board, not on its heap
    geo = layout.Geometry(65536, 16, kit.JOURNAL_ID, "mcu-pos-1", kit.CREATED_MS)
    before = heap.now()
    part = FakePartition(geo.file_size // 4096 + 2)
    base["partition"] = heap.now() - before         # the flash itself: not RAM on a board
    heap.base = base["code"] + base["partition"]
    format_partition(part, geo.encode())
    t0 = time.ticks_ms()
    signer = ed25519.Ed25519Signer(SEED)
    keygen_ms = time.ticks_diff(time.ticks_ms(), t0)
    t0 = time.ticks_ms()
    for _ in range(5):
        signer.sign(b"s" * 180)
    sign_ms = time.ticks_diff(time.ticks_ms(), t0) / 5

    clock = kit.StepClock(wall_ms=kit.CREATED_MS + 400 * DAY, step=1000)
    led, buzzer, display = kit.Pin(), kit.Pin(), kit.Display()
    now = [clock.wall_ms]
    journal = MicroJournal(PartitionStorage(part), signer, clock)
    index = FlashSaleIndex(DirFiles("/sidx"), journal.ring.geo.journal_id)     # as main() wires it
    loop = Loop(Terminal(journal, kit.PROFILE, kit.calendar(), Outputs(led, buzzer, display), index=index,
                         alert_files=DirFiles("/alerts")),
                None, kit.WDT(), lambda: now[0])


def step(i):
    """step(0) boots; then one sale per call (run_portable.mjs --steps), then
    the ticks that raise the alerts."""
    if i == 0:
        setup()
        return
    i -= 1
    mark("step %d" % i)                     # the live heap left by the previous step
    if i < SALES:
        t0 = time.ticks_ms()
        loop.submit(kit.sale(i, clock.wall_ms, amount=1000 + i))
        loop.step()
        sales_ms[0] += time.ticks_diff(time.ticks_ms(), t0)
        return
    if i == SALES:
        now[0] += 4 * DAY
    loop.step()
    now[0] += 3600000


def finish():
    mark("after the alerts")
    firing = len(loop.terminal.alerts.firing())
    print("FIRING", firing)
    print("LED", led.value())
    print("DISPLAY", display.lines[-1])
    print("HEAP_PEAK", heap.peak, heap.where)
    print("HEAP_PARTITION", base["partition"])
    print("HEAP_CODE", base["code"])
    print("KEYGEN_MS", keygen_ms)
    print("SIGN_MS", sign_ms)
    print("SALE_MS", sales_ms[0] / SALES)
    print("PUBLIC", binascii.hexlify(signer.public_bytes).decode())
    storage = PartitionStorage(part)
    for off in range(0, geo.file_size, 4096):
        print("IMAGE", binascii.hexlify(storage.pread(off, 4096)).decode())
