# Runs under MicroPython 1.29 (tests/mp/run_portable.mjs --script --steps N),
# driven by tests/firmware/test_alert_heap.py, which puts `P = {...}` before
# this file: P["sales"] sales, P["flash"] (the alert machine's records on
# flash, as main() wires it, or in RAM as before), P["now_ms"] (the host's
# clock: the sales are dated four days before it).
#
# An acquirer outage on the board: the firmware loop takes the sales
# (PER_STEP a step, the sale index on flash), nothing settles, and the
# ticks raise one settlement_overdue alert per sale (pending, firing and
# escalated at once: their deadlines are days gone), then the group's 4-hour
# repeat and a day more.  Prints the live-heap high-water mark (gc.mem_alloc
# after gc.collect between steps: the port frees garbage only between
# runPython calls), the heap once every alert fires, and the bytes of the
# alert files.  Not counted: the modules (frozen in flash on a board); the
# journal, the index's and the alerts' files are on the port's filesystem
# (Node's memory, as the board's flash), not the Python heap.
from daozhang.agent.core.journal import layout
from daozhang.firmware import alert_store_flash  # noqa: F401  (imported before the base: frozen code on a board)
from daozhang.firmware.flash_records import DirFiles
from daozhang.firmware.flash_storage import FlashStorage
from daozhang.firmware.main import Loop
from daozhang.firmware.micro_journal import MicroJournal
from daozhang.firmware.sale_index_flash import FlashSaleIndex
from daozhang.firmware.terminal import Outputs, Terminal
from portable import kit

DAY = 86400000
HOUR = 3600000
PER_STEP = 50
state = {"sold": 0, "ticks": 0}
most = [0]                                  # the most alert actions one tick made
heap = kit.HeapMark()


def setup():
    global clock, led, now
    heap.base = heap.now()                  # the modules: frozen in flash on a board
    # The journal in a file, as the shipped esp32s3 board has it
    # (firmware/flash_storage.py), on the port's filesystem: not on the
    # Python heap, whose conservative collector would otherwise scan the
    # journal's bytes for pointers.  128 segments of 64 KiB: the outage's
    # sales and their alert records (three a sale) fit without a sync.
    geo = layout.Geometry(65536, 128, kit.JOURNAL_ID, "mcu-outage-1", P["now_ms"] - 30 * DAY)
    with open("/journal.dzj", "wb") as f:
        f.write(geo.encode())
        block = bytes(4096)
        for _ in range(geo.file_size // 4096 - 1):
            f.write(block)
    clock = kit.StepClock(wall_ms=P["now_ms"], step=10)
    now = [P["now_ms"]]
    led = kit.Pin()
    boot()


def boot():
    """The terminal as main() wires it; again at a reset (same files)."""
    global journal, loop
    journal = MicroJournal(FlashStorage("/journal.dzj"), None, clock)     # unsigned: the heap, not the signer
    index = FlashSaleIndex(DirFiles("/sidx"), journal.ring.geo.journal_id)
    alert_files = DirFiles("/alerts") if P["flash"] else None
    terminal = Terminal(journal, kit.PROFILE, kit.calendar(), Outputs(led, kit.Pin(), kit.Display()),
                        index=index, alert_files=alert_files)
    loop = Loop(terminal, None, kit.WDT(), lambda: now[0])
    tick = terminal.tick

    def counted(now_ms):
        actions = tick(now_ms)
        most[0] = max(most[0], len(actions))
        return actions
    terminal.tick = counted


def step(i):
    if i == 0:
        setup()
        return
    used = heap.mark("step %d" % i)
    if state["sold"] < P["sales"]:
        for _ in range(min(PER_STEP, P["sales"] - state["sold"])):
            n = state["sold"]
            loop.submit(kit.sale(n, P["now_ms"] - 4 * DAY, amount=1000 + n))
            state["sold"] += 1
        return
    if state["ticks"] == 0:
        state["after_sales"] = used
    firing = loop.terminal.alerts.status_summary()["firing"]       # O(kinds)
    if firing < P["sales"]:
        # A tick a second raises the next slice of alerts (the terminal's
        # TICK_ALERTS: the outage's first ticks never hold every overdue
        # sale's observation and actions at once).
        now[0] += 1000
    else:
        if "firing_heap" not in state:
            state["firing_heap"] = used                 # every overdue sale has its alert
            state["ticks_to_fire"] = state["ticks"]
        # Then 4 hours (the group's repeat) and a day pass, a second apart
        # after; at the fourth step the board resets (P["reset"]): its alert
        # store is rebuilt from the journal, and the ticks after it journal
        # nothing (no alert raised twice).
        state["after"] = state.get("after", 0) + 1
        if state["after"] == 4 and P.get("reset"):
            state["seq_before_reset"] = journal.ring.next_seq
            boot()
            state["restored"] = loop.terminal.restored
            return
        now[0] += (4 * HOUR, DAY, 1000)[min(state["after"] - 1, 2)]
    loop.step()
    state["ticks"] += 1


def _bytes(path):
    import os
    total = 0
    try:
        for name in os.listdir(path):
            total += os.stat(path + "/" + name)[6]
    except OSError:
        pass
    return total


def finish():
    heap.mark("finish")
    print("SOLD", state["sold"])
    print("FIRING", len(loop.terminal.alerts.firing()))
    print("STORE", type(loop.terminal.alerts.alerts).__name__)
    print("LED", led.value())
    print("TICKS", state["ticks"])
    print("TICKS_TO_FIRE", state.get("ticks_to_fire"))
    if "seq_before_reset" in state:
        print("RESTORED", state["restored"]["alerts"], state["restored"]["skipped"])
        from daozhang.agent.core.journal import record
        from daozhang.firmware.journal_frames import FrameReader
        records, _, _ = FrameReader(journal.storage, journal.ring).read(state["seq_before_reset"], 8192)
        print("JOURNALED_AFTER_RESET", " ".join(str(t) for _, t, _ in records) or "-")
        print("ALERTS_AFTER_RESET", len([1 for _, t, _ in records if t == record.TYPE_ALERT]))
    print("MOST_ACTIONS_A_TICK", most[0])
    print("HEAP_AFTER_SALES", state.get("after_sales"))
    print("HEAP_FIRING", state.get("firing_heap"))
    print(heap.line())
    print("ALERT_FILE_BYTES", _bytes("/alerts"))
    print("INDEX_FILE_BYTES", _bytes("/sidx"))
