"""A serial device as both ends of the USB service port use it (SPEC §8).

The agent serves its journal on one end (agent/service_port.py) and the
technician's laptop pulls it from the other (host_tools/usb/service_client.py);
both read with a short poll and write whole frames, and both must treat every
way pyserial reports a vanished device as one "link lost".  What that failure
is called differs per side, so the caller passes `lost(stage, exc)`, which
builds the exception to raise (stage: "open", "read" or "write").
"""

import termios

READ_SIZE = 65536
POLL_S = 0.05


class SerialPort:
    """A pyserial URL or device path (/dev/ttyGS0, /dev/ttyACM0, loop://)."""

    def __init__(self, url, baudrate, write_timeout, lost):
        import serial
        # pyserial lets termios.error through when the device vanishes mid-call.
        self._errors = (serial.SerialException, OSError, termios.error)
        self._lost = lost
        try:
            # The port's own timeout stays fixed (POLL_S): changing it re-runs tcsetattr.
            self.port = serial.serial_for_url(url, baudrate=baudrate, timeout=POLL_S,
                                              write_timeout=write_timeout)
        except self._errors + (ValueError,) as exc:
            raise lost("open", exc)

    def read(self, timeout=None):
        """Bytes that arrived within one poll, or b"" on a quiet line."""
        try:
            first = self.port.read(1)
            if not first:
                return b""
            waiting = self.port.in_waiting
            return first + (self.port.read(min(waiting, READ_SIZE)) if waiting else b"")
        except self._errors as exc:
            raise self._lost("read", exc)

    def write(self, data, timeout=None):
        """All of `data`; the write timeout is the one given at open."""
        try:
            self.port.write(data)
            self.port.flush()
        except self._errors as exc:
            raise self._lost("write", exc)

    def close(self):
        try:
            self.port.close()
        except Exception:  # closing a vanished device can fail; it is gone either way
            pass
