"""The agent's USB service port: DeviceSession served on a serial device.

A thin CPython adapter (docs/SPEC.md §8).  It owns the I/O the portable core
must not: the serial device (a pyserial URL or path such as /dev/ttyGS0, or a
raw fd such as a pty), the journal file opened read-only, the clock, the
random source, Ed25519 verification and the technician key files.

It survives garbage, half frames and disconnects: a read or write error closes
the link, drops the session to unauthenticated and reopens after a pause; any
other fault is logged and the loop goes on.  Nothing it does writes.
"""

import logging
import os
import select
import threading
import time
import tty

from daozhang.agent.core.errors import LocalError
from daozhang.agent.core.service.service_frames import MAX_PAYLOAD
from daozhang.agent.core.service.service_session import DEFAULT_IDLE_TIMEOUT, SUPERBLOCK_SIZE, DeviceSession
from daozhang.serial_port import READ_SIZE, SerialPort
from daozhang.signing import ed25519_verify, load_public_bytes

log = logging.getLogger("daozhang.service_port")


class LinkDown(Exception):
    """The serial link failed; the port closes it and opens it again."""


def read_journal_geometry(path):
    """(segment_size, segment_count) from the journal's superblock."""
    from daozhang.agent.core.journal.layout import decode_superblock
    fd = os.open(path, os.O_RDONLY)
    try:
        head = os.pread(fd, SUPERBLOCK_SIZE, 0)
    finally:
        os.close(fd)
    geometry = decode_superblock(head)
    return geometry.segment_size, geometry.segment_count


class ReadOnlyJournal:
    """The journal file, opened O_RDONLY: the session can only read it."""

    def __init__(self, path, geometry=None):
        self.path = path
        if geometry is None:
            geometry = read_journal_geometry(path)
        self.segment_size, self.segment_count = geometry
        self.size = SUPERBLOCK_SIZE + self.segment_size * self.segment_count
        self._fd = os.open(path, os.O_RDONLY)
        actual = os.lseek(self._fd, 0, os.SEEK_END)  # st_size is 0 on a block device
        if actual < self.size:
            os.close(self._fd)
            raise LocalError("journal %s is %d bytes, its geometry says %d" % (path, actual, self.size))

    def read(self, offset, length):
        parts = []
        while length > 0:
            part = os.pread(self._fd, length, offset)
            if not part:
                raise OSError("journal ended at %d" % offset)
            parts.append(part)
            offset += len(part)
            length -= len(part)
        return b"".join(parts)

    def close(self):
        os.close(self._fd)


def load_technician_keys(paths):
    """Raw 32-byte Ed25519 keys from SubjectPublicKeyInfo PEM files."""
    return [load_public_bytes(path) for path in paths]


class _FdLink:
    """A raw file descriptor (a pty, or an fd handed over by systemd)."""

    def __init__(self, fd):
        self.fd = fd
        if os.isatty(fd):
            # A pty starts in cooked mode: echo and line editing would mangle frames.
            tty.setraw(fd)

    def read(self, timeout):
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return b""
        try:
            data = os.read(self.fd, READ_SIZE)
        except OSError as exc:  # EIO: the other end of the pty went away
            raise LinkDown("read: %s" % exc)
        if not data:
            raise LinkDown("read: end of file")
        return data

    def write(self, data, timeout):
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LinkDown("write: peer not reading for %.1f s" % timeout)
            _, ready, _ = select.select([], [self.fd], [], remaining)
            if not ready:
                continue
            try:
                n = os.write(self.fd, view)
            except OSError as exc:
                raise LinkDown("write: %s" % exc)
            view = view[n:]

    def close(self):
        pass  # the fd belongs to whoever handed it over


class ServicePort:
    """Serves one DeviceSession on `device` until `stop()`.

    device: a pyserial URL or device path, or an int fd (a pty).
    callbacks: {"info": f() -> map, "alerts": f() -> list, "health": f() -> map}.
    """

    def __init__(self, device, journal_path, device_id, technician_keys, callbacks=None,
                 geometry=None, baudrate=115200, silence=1.0, idle_timeout=DEFAULT_IDLE_TIMEOUT,
                 reopen_delay=1.0, write_timeout=5.0, max_payload=MAX_PAYLOAD,
                 clock=time.monotonic, random_bytes=os.urandom):
        self.device = device
        self.baudrate = baudrate
        self.silence = silence
        self.reopen_delay = reopen_delay
        self.write_timeout = write_timeout
        self.clock = clock
        self.journal = ReadOnlyJournal(journal_path, geometry)
        keys = [k for k in technician_keys if isinstance(k, bytes)]
        keys += load_technician_keys([k for k in technician_keys if not isinstance(k, bytes)])
        self.session = DeviceSession(device_id, self.journal, ed25519_verify, keys, random_bytes,
                                     callbacks=callbacks, max_payload=max_payload,
                                     idle_timeout=idle_timeout)
        self.faults = 0
        self._stop = threading.Event()
        self._thread = None

    def _open(self):
        if isinstance(self.device, int):
            return _FdLink(self.device)
        url = self.device
        return SerialPort(url, self.baudrate, self.write_timeout,
                          lambda stage, exc: LinkDown("%s: %s" % ("open " + url if stage == "open" else stage, exc)))

    def serve(self):
        """Run until stop(): the body of the port's thread."""
        link = None
        last_rx = self.clock()
        poll = min(0.2, self.silence / 2)
        while not self._stop.is_set():
            try:
                if link is None:
                    link = self._open()
                    log.info("service port open on %s", self.device)
                data = link.read(poll)
                now = self.clock()
                if data:
                    last_rx = now
                    out = self.session.receive_data(data, now)
                elif self.session.codec.buffered and now - last_rx >= self.silence:
                    out = self.session.on_silence(now)
                else:
                    continue
                if out:
                    link.write(out, self.write_timeout)
            except LinkDown as exc:
                log.info("service port link down: %s", exc)
                self.session.reset()
                if link is not None:
                    link.close()
                link = None
                self._stop.wait(self.reopen_delay)
            except Exception:  # never let one bad moment take the port down
                self.faults += 1
                log.exception("service port fault; session reset")
                self.session.reset()
                self._stop.wait(self.reopen_delay)
        if link is not None:
            link.close()

    def start(self):
        self._thread = threading.Thread(target=self.serve, name="service-port", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=5.0):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.journal.close()
