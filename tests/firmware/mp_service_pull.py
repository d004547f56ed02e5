# Runs under MicroPython 1.29 (tests/mp/run_portable.mjs --script, with
# DZ_SOCKET_BRIDGE='{}': plain TCP), driven by tests/firmware/test_service_pull.py,
# which puts `P = {...}` before this file.  The board takes a few signed
# sales, then serves its USB service port (firmware/service_port.py) on a
# stream that stands for the USB CDC port: here a TCP connection the test
# relays to a pty, whose other end `daozhang device pull` opens as it would
# /dev/ttyACM0.  It serves until the test hangs up, then prints what it has.
import binascii
import hashlib
import time

import dz_socket_bridge as bridge
import usocket

from daozhang.agent.core.journal import layout
from daozhang.firmware import ed25519
from daozhang.firmware.main import Loop
from daozhang.firmware.micro_journal import MicroJournal
from daozhang.firmware.partition_storage import PartitionStorage, format_partition
from daozhang.firmware.service_port import BoardServicePort
from daozhang.firmware.terminal import Outputs, Terminal
from portable import kit
from portable.fake_partition import FakePartition


class BridgeStream:
    """read(n): the bytes waiting (None when none), write(b): all of them; `eof` once the host hung up."""

    def __init__(self):
        self.eof = False

    def read(self, n):
        got = bridge.read(n, 0)
        if got == -2:
            return None
        if got == -1 or (isinstance(got, str) and got.startswith("!")):
            self.eof = True
            return None
        return binascii.unhexlify(got)

    def write(self, data):
        bridge.write(binascii.hexlify(data).decode())
        return len(data)


geo = layout.Geometry(P["segment_size"], P["segments"], binascii.unhexlify(P["journal_id"]), P["device"],
                      P["now_ms"])
part = FakePartition((layout.SUPERBLOCK_SIZE + P["segment_size"] * P["segments"]) // 4096 + 2)
format_partition(part, geo.encode())
storage = PartitionStorage(part)
clock = kit.StepClock(wall_ms=P["now_ms"])
journal = MicroJournal(storage, ed25519.Ed25519Signer(binascii.unhexlify(P["seed"])), clock)
terminal = Terminal(journal, kit.PROFILE, kit.calendar(), Outputs())
for n in range(P["sales"]):
    terminal.take_sale(kit.sale(n, clock.wall_ms, amount=1000 + n))
image = storage.pread(0, layout.SUPERBLOCK_SIZE + P["segment_size"] * P["segments"])
print("IMAGE", binascii.hexlify(hashlib.sha256(image).digest()).decode(), len(image))
print("NEXT", journal.ring.next_seq)

sock = usocket.socket()
sock.connect((P["host"], P["port"]))
stream = BridgeStream()
port = BoardServicePort(stream, terminal, [binascii.unhexlify(P["tech_pub"])], ed25519.verify)
t0 = time.ticks_ms()
loop = Loop(terminal, None, kit.WDT(), lambda: clock.wall_ms,
            mono_ms=lambda: time.ticks_diff(time.ticks_ms(), t0), service=port)
steps = 0
while not stream.eof:
    loop.step()
    steps += 1
    if bridge.wait(50) == -1:         # the board's select.poll on the CDC port
        break
print("SERVED", port.frames_out, "STEPS", steps, "STATE", port.session.state)
