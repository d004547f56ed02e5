# Runs under MicroPython 1.29 (tests/mp/run_portable.mjs --script, with
# DZ_SOCKET_BRIDGE set), driven by tests/firmware/test_mqtt_sync.py, which
# puts a line `P = {...}` (broker, device, backend key, now) before this file.
#
# The board's journal (the shipped 64 KiB segments) on a fake NOR partition,
# firmware/main.py's loop with the board's pure-Python Ed25519 signer, and
# firmware/umqtt_link.py: micropython-lib's umqtt.simple over the Node socket
# bridge (TLS with the device's certificate) to a real mosquitto and backend.
# Phases, each printed as it ends:
#   SALES      sales taken while offline, then every one acked by the backend;
#              released stays at the first sale (nothing settled yet)
#   SETTLED    the test ingests a settlement file with `backend settle`; the
#              backend's signed acks for the first P["settled"] sales reach the
#              board, are journaled and resolve those sales (settle_n goes up)
#   LED        days later the unsettled rest is overdue: the LED lights and
#              the alerts are journaled (and go up the alerts topic)
#   RELEASED   past the watch window the sales expire, the next ack releases
#              everything acked: the ring may reuse the space
# Waits are on the socket: idle(ms) blocks until the broker sends, never a sleep.
import binascii
import json
import time

import usocket

from daozhang.agent.core.journal import layout
from daozhang.firmware import ed25519
from daozhang.firmware.main import Loop
from daozhang.firmware.micro_journal import MicroJournal
from daozhang.firmware.partition_storage import PartitionStorage, format_partition
from daozhang.firmware.settlement_acks import BoardSettlements
from daozhang.firmware.flash_records import DirFiles
from daozhang.firmware.link_journal import LinkJournal
from daozhang.firmware.sale_index_flash import FlashSaleIndex
from daozhang.firmware.umqtt_link import UmqttLink
from umqtt.simple import MQTTClient
from daozhang.firmware.terminal import Outputs, Terminal
from portable import kit
from portable.fake_partition import FakePartition

DAY = 86400000
usocket.USE_TLS[0] = True
geo = layout.Geometry(65536, 16, binascii.unhexlify(P["journal_id"]), P["device"], P["now_ms"])
part = FakePartition(geo.file_size // 4096 + 2)
format_partition(part, geo.encode())


class BoardClock:
    """The board's RTC: real time since start plus the days the test moves it."""

    def __init__(self, start_ms):
        self.start = start_ms
        self.jump = 0
        self.t0 = time.ticks_ms()

    @property
    def wall_ms(self):
        return self.start + self.jump + time.ticks_diff(time.ticks_ms(), self.t0)

    def now(self):
        from daozhang.agent.core.journal.ring import Clock
        return Clock(self.wall_ms, b"B" * 8, time.ticks_diff(time.ticks_ms(), self.t0))


clock = BoardClock(P["now_ms"])
led, buzzer, display = kit.Pin(), kit.Pin(), kit.Display()
journal = MicroJournal(PartitionStorage(part), ed25519.Ed25519Signer(binascii.unhexlify(P["seed"])), clock)
sync_journal = LinkJournal(journal, "/journal.ack")


def log(event, **fields):
    if event in ("sync_offline", "sync_ack_timeout", "sync_rejected"):
        print("LOG", event, fields)


link = UmqttLink(lambda: MQTTClient(P["device"], P["host"], P["port"], keepalive=30), sync_journal, P["device"],
                 binascii.unhexlify(P["backend_pub"]), ed25519.verify, clock.wall_ms,
                 settings={"ack_timeout_ms": 5000, "max_batch_bytes": 4096, "max_inflight": 2},
                 log=log, release_floor=lambda: terminal.release_floor(),
                 settlements=lambda items, redelivered: acks.apply(items, redelivered),
                 alert=lambda kind, severity, detail: terminal.link_alert(kind, severity, detail),
                 status_extra=lambda: acks.status())
terminal = Terminal(journal, kit.PROFILE, kit.calendar(), Outputs(led, buzzer, display),
                    lambda actions: link.queue_alerts(actions, clock.wall_ms),
                    index=FlashSaleIndex(DirFiles("/sidx"), journal.ring.geo.journal_id))   # as main() wires it
acks = BoardSettlements(terminal)
loop = Loop(terminal, None, kit.WDT(), lambda: clock.wall_ms, link=link)


def idle(ms):
    """Wait for the broker's next bytes, at most ms (a board: select.poll on the socket)."""
    if link.client is not None:
        link.client.sock.wait_readable(ms)


def run_until(done, what, steps=4000):
    for _ in range(steps):
        loop.step()
        if done():
            return
        idle(200)
    raise AssertionError("not %s after %d steps: %r" % (what, steps, link.health()))


T0 = time.ticks_ms()
first = None
for i in range(P["sales"]):
    txn = kit.sale(i, clock.wall_ms, amount=1000 + i)
    result = loop.submit(txn)
    print("SALE", json.dumps(txn))
    first = result["seq"] if first is None else first
last = result["seq"]
run_until(lambda: link.position()["acked"] > last, "acked")
print("T", time.ticks_ms() - T0)
print("SALES", P["sales"], "FIRST", first, "LAST", last, "ACKED", link.position()["acked"],
      "RELEASED", journal.noted[1], "CONNECTS", link.health()["connects"])

# The test runs `backend settle` with a file settling the first P["settled"] sales.
print("SETTLE_READY")
run_until(lambda: acks.applied >= P["settled"] and link.health().get("settle_n") == acks.cursor.value,
          "settled", steps=600)
print("SETTLED", acks.applied, "SETTLE_N", acks.cursor.value)

clock.jump += 4 * DAY
run_until(lambda: led.value() == 1 and not link.health()["alerts_waiting"], "lit")
print("T", time.ticks_ms() - T0)
print("LED", led.value(), "FIRING", len(terminal.alerts.firing()), "DISPLAY", display.lines[-1])

clock.jump += 60 * DAY                 # past the watch window: the sales expire
head = journal.ring.next_seq
run_until(lambda: link.position()["acked"] >= head and journal.noted[1] >= head, "released")
loop.submit(kit.sale(P["sales"], clock.wall_ms))          # the next commit carries the cursors
print("RELEASED", journal.ring.released, "ACKED", journal.ring.acked, "NEXT", journal.ring.next_seq)
print("PUBLIC", binascii.hexlify(journal.signer.public_bytes).decode())
