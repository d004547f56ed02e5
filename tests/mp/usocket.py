# `usocket` for MicroPython's WebAssembly port, over the Node socket bridge
# (tests/mp/socket_bridge.mjs): just what micropython-lib's umqtt.simple and
# the firmware's sync link use, with MicroPython's socket semantics:
#   read(n)   blocking: exactly n bytes, fewer only at end of stream;
#             with settimeout(t): OSError(ETIMEDOUT) when nothing came in t;
#             non-blocking (setblocking(False) / settimeout(0)): None when
#             nothing is waiting
#   write(b[, n]) all of it (or its first n bytes); returns the count
# On a board this module is MicroPython's own; only the tests load this one.
import errno

import ubinascii

import dz_socket_bridge as _bridge

AF_INET = 2
SOCK_STREAM = 1
USE_TLS = [False]          # the test sets it: the bridge's worker does TLS with the device's certificate


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    return [(AF_INET, SOCK_STREAM, 0, "", (host, port))]


def _check(result, what):
    if isinstance(result, str) and result.startswith("!"):
        raise OSError(errno.ECONNRESET, "%s: %s" % (what, result[1:]))
    return result


class socket:
    def __init__(self, af=AF_INET, type=SOCK_STREAM, proto=0):
        self._timeout_ms = -1          # blocking
        self._open = False

    def connect(self, addr):
        _check(_bridge.connect(addr[0], addr[1], USE_TLS[0]), "connect to %s:%s" % (addr[0], addr[1]))
        self._open = True

    def settimeout(self, seconds):
        self._timeout_ms = -1 if seconds is None else int(seconds * 1000)

    def setblocking(self, flag):
        self._timeout_ms = -1 if flag else 0

    def setsockopt(self, *args):
        pass

    def write(self, buf, n=None):
        if isinstance(buf, str):           # MicroPython's sockets take str as UTF-8
            buf = buf.encode()
        data = bytes(buf) if n is None else bytes(buf[:n])
        if data:
            _check(_bridge.write(ubinascii.hexlify(data).decode()), "write")
        return len(data)

    send = write

    def sendall(self, buf):
        self.write(buf)

    def read(self, n):
        got = b""
        while len(got) < n:
            # Non-blocking applies to the first byte; a message half in is finished blocking.
            timeout = -1 if got and self._timeout_ms == 0 else self._timeout_ms
            result = _check(_bridge.read(n - len(got), timeout), "read")
            if result == -1:                 # end of stream
                return got
            if result == -2:                 # nothing within the timeout
                if timeout == 0:
                    return None
                raise OSError(errno.ETIMEDOUT)
            got += ubinascii.unhexlify(result)
        return got

    recv = read

    def wait_readable(self, ms):
        """True once bytes are waiting (or the stream ended), False after
        `ms` with none: the tests' stand-in for select.poll on a board."""
        return _bridge.wait(int(ms)) != -2

    def close(self):
        if self._open:
            _bridge.close()
            self._open = False
