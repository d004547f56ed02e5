"""The USB service port on the board: the core's DeviceSession (SPEC 8,
agent/core/service/service_session.py) served on a byte stream, one turn
of the firmware loop at a time, so `daozhang device pull --port
/dev/ttyACM0` copies a board's journal as it does a Linux terminal's.

    port = BoardServicePort(stream, terminal, technician_keys, ed25519.verify)
    Loop(..., service=port)          # port.step(mono_ms) each loop step

`stream` is anything with read(n) (bytes, or None / b"" when nothing is
waiting) and write(b), and optionally any(): micropython-lib's USB CDC
interface (usb-device-cdc: a second CDC port beside the REPL), or a
machine.UART to a USB-serial bridge.  The session reads the journal
through its storage (pread: the partition's bytes come back un-inverted)
and never writes: read-only by construction, as on Linux.  A half frame
followed by SILENCE_MS of quiet is dropped with a NAK.  What `info`,
`alerts` and `health` answer is the Linux agent's shape
(agent/service_port_plugin.py): journal range, backlog, the device's
public key, the firing alerts.  Portable: CPython and MicroPython.
"""

from daozhang.agent.core.journal import layout
from daozhang.agent.core.service.service_session import DeviceSession, cbor_safe

SILENCE_MS = 200
READ_SIZE = 2048
SERVICE_PAYLOAD = 8192       # frames the board builds: a small heap, a slow link


class JournalView:
    """What DeviceSession reads: the journal's bytes, superblock first."""

    def __init__(self, journal):
        geo = journal.ring.geo
        self.storage = journal.storage
        self.segment_size = geo.segment_size
        self.segment_count = geo.segment_count
        self.size = layout.SUPERBLOCK_SIZE + geo.segment_size * geo.segment_count

    def read(self, offset, length):
        return self.storage.pread(offset, length)


def _random_bytes(n):
    from daozhang.firmware.micro_journal import random_bytes
    return random_bytes(n)


class BoardServicePort:
    def __init__(self, stream, terminal, technician_keys, verify, random_bytes=None, link=None,
                 max_payload=SERVICE_PAYLOAD):
        self.stream = stream
        self.terminal = terminal
        self.link = link
        journal = terminal.journal
        self.session = DeviceSession(journal.ring.geo.device_id, JournalView(journal), verify,
                                     technician_keys, random_bytes or _random_bytes,
                                     {"info": self.info, "alerts": self.alerts, "health": self.health},
                                     max_payload=max_payload)
        self._last_rx = None
        self.frames_out = 0

    def step(self, mono_ms):
        """Answer what the stream holds; NAK a half frame left by a quiet line."""
        now_s = mono_ms // 1000
        if hasattr(self.stream, "any") and not self.stream.any():
            data = None
        else:
            data = self.stream.read(READ_SIZE)
        if data:
            self._last_rx = mono_ms
            self._write(self.session.receive_data(data, now_s))
        elif self._last_rx is not None and mono_ms - self._last_rx >= SILENCE_MS:
            self._last_rx = None
            self._write(self.session.on_silence(now_s))

    def _write(self, out):
        if out:
            self.stream.write(out)
            self.frames_out += 1

    # -- what the session answers ------------------------------------------------

    def info(self):
        journal = self.terminal.journal
        ring = journal.ring
        firsts = [s for s in ring.first_seqs if s is not None]
        out = {"journal_range": [min(firsts) if firsts else 0, ring.next_seq - 1],
               "backlog": ring.next_seq - journal.noted[0],
               "alerts": len(self.terminal.alerts.firing())}
        signer = journal.signer
        if signer is not None:
            out["device_pubkey"] = bytes(signer.public_bytes)
        return out

    def alerts(self):
        return [cbor_safe(a) for a in self.terminal.alerts.firing()]

    def health(self):
        ring = self.terminal.journal.ring
        out = {"journal": {"next_seq": ring.next_seq, "acked": ring.acked, "released": ring.released,
                           "segments_in_use": ring.segments_in_use()}}
        if self.link is not None:
            out["sync"] = cbor_safe(self.link.health())
        return out
