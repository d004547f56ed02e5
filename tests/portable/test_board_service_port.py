"""The USB service port on the board (firmware/service_port.py), both
interpreters: the core's DeviceSession over a byte stream, stepped by the
firmware loop.  A technician (a real Ed25519 key, checked by the board's
pure-Python verifier) reads `info`, authenticates and reads the journal's
bytes exactly as they are on the flash partition; a half frame left by a
quiet line is NAKed; nothing is written."""

from daozhang.agent.core.journal import layout
from daozhang.agent.core.service.service_frames import NAK, REQUEST, RESPONSE, Frame, FrameCodec, NEED_DATA
from daozhang.agent.core.service.service_session import auth_message
from daozhang.firmware import ed25519
from daozhang.firmware.main import Loop
from daozhang.firmware.micro_journal import MicroJournal
from daozhang.firmware.partition_storage import PartitionStorage, format_partition
from daozhang.firmware.service_port import BoardServicePort
from daozhang.firmware.terminal import Outputs, Terminal

from portable import kit
from portable.fake_partition import FakePartition

DAY = 86400000
TECH_SEED = b"\x07" * 32
SEGMENT, SEGMENTS = 8192, 4


class Stream:
    """A USB CDC interface as the board sees it: bytes in from the host, bytes out."""

    def __init__(self):
        self.rx = b""
        self.tx = b""

    def any(self):
        return len(self.rx)

    def read(self, n):
        data, self.rx = self.rx[:n], self.rx[n:]
        return data

    def write(self, data):
        self.tx += data
        return len(data)


class Host:
    """The technician's end: frames out, answers back through the board's loop."""

    def __init__(self, stream, loop, mono):
        self.stream, self.loop, self.mono = stream, loop, mono
        self.codec = FrameCodec()
        self.seq = 0

    def ask(self, payload, raw=None):
        self.seq += 1
        self.stream.rx += raw if raw is not None else self.codec.send(Frame(REQUEST, self.seq, payload))
        return self.answer()

    def answer(self):
        for _ in range(40):
            self.mono[0] += 10
            self.loop.step()
            if self.stream.tx:
                self.codec.receive_data(self.stream.tx)
                self.stream.tx = b""
            event = self.codec.next_event()
            if event is not NEED_DATA:
                return event
        raise AssertionError("the board did not answer")


def _board():
    part = FakePartition((layout.SUPERBLOCK_SIZE + SEGMENT * SEGMENTS) // 4096 + 2)
    geo = layout.Geometry(SEGMENT, SEGMENTS, kit.JOURNAL_ID, "mcu-usb-1", kit.CREATED_MS)
    format_partition(part, geo.encode())
    storage = PartitionStorage(part)
    clock = kit.StepClock(wall_ms=kit.CREATED_MS + 400 * DAY)
    journal = MicroJournal(storage, ed25519.Ed25519Signer(b"\x01" * 32), clock)
    terminal = Terminal(journal, kit.PROFILE, kit.calendar(), Outputs())
    for n in range(3):
        terminal.take_sale(kit.sale(n, clock.wall_ms))
    stream = Stream()
    mono = [0]
    port = BoardServicePort(stream, terminal, [ed25519.public_key(TECH_SEED)], ed25519.verify,
                            random_bytes=lambda n: b"\x42" * n)
    loop = Loop(terminal, None, kit.WDT(), lambda: clock.wall_ms, mono_ms=lambda: mono[0], service=port)
    return Host(stream, loop, mono), storage, journal


def test_a_technician_reads_the_boards_journal_over_the_port():
    host, storage, journal = _board()
    info = host.ask({"cmd": "info"})
    assert info.type == RESPONSE
    p = info.payload
    assert p["device_id"] == "mcu-usb-1" and p["segment_count"] == SEGMENTS and p["segment_size"] == SEGMENT
    assert p["journal_range"] == [0, journal.ring.next_seq - 1]
    assert p["device_pubkey"] == journal.signer.public_bytes
    assert host.ask({"cmd": "read", "offset": 0, "length": 16}).payload["code"] == "auth_required"
    nonce = host.ask({"cmd": "auth_begin"}).payload["nonce"]
    signature = ed25519.sign(TECH_SEED, auth_message("mcu-usb-1", nonce))
    token = host.ask({"cmd": "auth", "pubkey": ed25519.public_key(TECH_SEED), "signature": signature}).payload["session"]
    got = host.ask({"cmd": "read", "session": token, "offset": 0, "length": p["journal_size"]
                    if p["journal_size"] <= p["max_chunk"] else p["max_chunk"]})
    assert got.type == RESPONSE
    assert got.payload["data"] == storage.pread(0, len(got.payload["data"]))      # the ring's bytes, un-inverted
    assert layout.decode_superblock(got.payload["data"][:layout.SUPERBLOCK_SIZE]).device_id == "mcu-usb-1"
    health = host.ask({"cmd": "health", "session": token}).payload
    assert health["journal"]["next_seq"] == journal.ring.next_seq


def test_a_half_frame_on_a_quiet_line_is_naked():
    host, _, _ = _board()
    torn = host.codec.send(Frame(REQUEST, 1, {"cmd": "info"}))
    answer = host.ask(None, raw=torn[:7])
    assert answer.type == NAK
    host.seq = 1
    assert host.ask(None, raw=torn).type == RESPONSE
