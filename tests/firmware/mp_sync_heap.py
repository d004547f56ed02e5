# Runs under MicroPython 1.29 (tests/mp/run_portable.mjs --script --steps N,
# with DZ_SOCKET_BRIDGE set), driven by tests/firmware/test_mqtt_sync.py, which
# puts `P = {...}` before this file.  The issue 16 heap budget: the live heap
# (gc.mem_alloc after gc.collect, between steps: the port frees garbage only
# between runPython calls) while the board journals a backlog of at least
# P["records"] records offline, 100 of its sales overdue (100 active
# alerts), then syncs all of it through umqtt to the real broker and backend.
# Not counted: the modules (frozen in flash on a board) and the fake
# partition's bytes and the sale index's files (the flash itself).  Counted:
# everything else, the watchdog, the alert machine, the sync state and its
# queued alert messages, umqtt.
import binascii
import time

import usocket

from daozhang.agent.core.journal import layout
from daozhang.firmware import alert_store_flash  # noqa: F401  (imported before the base: frozen code on a board)
from daozhang.firmware import ed25519
from daozhang.firmware.flash_records import DirFiles
from daozhang.firmware.link_journal import LinkJournal
from daozhang.firmware.main import Loop
from daozhang.firmware.micro_journal import MicroJournal
from daozhang.firmware.partition_storage import PartitionStorage, format_partition
from daozhang.firmware.sale_index_flash import FlashSaleIndex
from daozhang.firmware.terminal import Outputs, Terminal
from daozhang.firmware.umqtt_link import UmqttLink
from portable import kit
from portable.fake_partition import FakePartition
from umqtt.simple import MQTTClient

DAY = 86400000
OVERDUE = 100
PER_STEP = 10
state = {"phase": "sales", "sold": 0, "steps": 0}
heap = kit.HeapMark()


class BoardClock:
    def __init__(self, start_ms):
        self.start = start_ms
        self.t0 = time.ticks_ms()

    @property
    def wall_ms(self):
        return self.start + time.ticks_diff(time.ticks_ms(), self.t0)

    def now(self):
        from daozhang.agent.core.journal.ring import Clock
        return Clock(self.wall_ms, b"H" * 8, time.ticks_diff(time.ticks_ms(), self.t0))


def setup():
    global clock, journal, terminal, link, loop, led
    usocket.USE_TLS[0] = True
    heap.base = heap.now()                  # the modules: frozen in flash on a board
    geo = layout.Geometry(65536, 16, binascii.unhexlify(P["journal_id"]), P["device"], P["now_ms"])
    before = heap.now()
    part = FakePartition(geo.file_size // 4096 + 2)
    heap.base += heap.now() - before        # the flash itself
    format_partition(part, geo.encode())
    clock = BoardClock(P["now_ms"])
    state["t0"] = time.ticks_ms()
    led = kit.Pin()
    journal = MicroJournal(PartitionStorage(part), ed25519.Ed25519Signer(binascii.unhexlify(P["seed"])), clock)
    link = UmqttLink(lambda: MQTTClient(P["device"], P["host"], P["port"], keepalive=30), LinkJournal(journal),
                     P["device"], binascii.unhexlify(P["backend_pub"]), ed25519.verify, clock.wall_ms,
                     settings={"ack_timeout_ms": 10000, "max_batch_bytes": 8192, "max_inflight": 4},
                     release_floor=lambda: terminal.release_floor())
    # The sale index on flash: files on the port's filesystem (Node's memory, as
    # the partition's blocks stand for the board's flash: not the Python heap).
    index = FlashSaleIndex(DirFiles("/sidx"), journal.ring.geo.journal_id)
    terminal = Terminal(journal, kit.PROFILE, kit.calendar(), Outputs(led, kit.Pin(), kit.Display()),
                        lambda actions: link.queue_alerts(actions, clock.wall_ms), index=index,
                        alert_files=DirFiles("/alerts"))       # the alert machine's records too, as main() has them
    loop = Loop(terminal, None, kit.WDT(), lambda: clock.wall_ms, link=link)


def step(i):
    if i == 0:
        setup()
        return
    if state["phase"] == "done":
        return                                  # the spare steps: nothing to measure
    heap.mark("%s step %d" % (state["phase"], i))
    if state["phase"] == "sync" and state["steps"] == 0:
        state["after_sales"] = heap.peak
    if state["phase"] == "sales":           # offline: the backlog builds up
        for _ in range(PER_STEP):
            n = state["sold"]
            at = clock.wall_ms - (4 * DAY if n < OVERDUE else 0)
            loop.submit(kit.sale(n, at, amount=1000 + n))
            state["sold"] += 1
        if journal.ring.next_seq >= P["records"]:
            state["phase"], state["backlog"] = "sync", journal.ring.next_seq
            state["t_sales"] = time.ticks_diff(time.ticks_ms(), state["t0"])
            loop.terminal.tick(clock.wall_ms)            # the 100 overdue sales raise their alerts
        return
    if state["phase"] == "sync":
        state["steps"] += 1
        loop.step()
        if link.position()["acked"] >= state["backlog"]:
            state["phase"] = "done"
            state["t_sync"] = time.ticks_diff(time.ticks_ms(), state["t0"]) - state["t_sales"]
        elif link.client is not None:
            link.client.sock.wait_readable(200)


def finish():
    heap.mark("finish")
    print("PHASE", state["phase"])
    print("SOLD", state["sold"])
    print("BACKLOG", state.get("backlog"))
    print("ACKED", link.position()["acked"])
    print("FIRING", len(terminal.alerts.firing()))
    print("LED", led.value())
    print("SYNC_STEPS", state["steps"])
    print("SALES_MS", state.get("t_sales"))
    print("SYNC_MS", state.get("t_sync"))
    print("HEAP_AFTER_SALES", state.get("after_sales"))
    print(heap.line())
