"""systemd notifications (sd_notify(3)) written by hand.

Why no library: python-systemd needs libsystemd's C bindings (a compiler or
a distro package on every terminal image) for what is one datagram on a Unix
socket.  The protocol: send "READY=1", "WATCHDOG=1", "STOPPING=1",
"STATUS=..." as a datagram to $NOTIFY_SOCKET; a leading "@" names an
abstract socket.  Without $NOTIFY_SOCKET (not under systemd) every call is a
no-op that returns False.
"""

import os
import socket


def notify(state):
    """Send `state` (e.g. "READY=1\\nSTATUS=serving") to systemd; True if sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address[0] == "@":
        address = "\0" + address[1:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(address)
        sock.sendall(state.encode("utf-8"))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def watchdog_interval():
    """Seconds between WATCHDOG=1 pings systemd expects, or None (sd_watchdog_enabled)."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None
