"""When a mosquitto we started is ready: one rule for the demo and the tests.

Accepting TCP is not enough. mosquitto 2.0 binds and listens on a TLS
listener *before* it loads the server key; with a bad key it then exits.
A probe that connects in that window would call a dying broker ready. The
"mosquitto version X running" log line comes only after every listener is
fully set up, so readiness is: that line in the log written by this start,
the process alive, and the port accepting.
"""

import re
import socket
import time

RUNNING_LINE = re.compile(r"mosquitto version \S+ running")


class NotReady(Exception):
    """The broker died or did not get ready in time (message says which)."""


def log_says_running(log_text):
    return RUNNING_LINE.search(log_text) is not None


def wait_broker_ready(host, port, exit_status, log_since_start, timeout):
    """Return once the broker is ready, or raise NotReady.

    `exit_status(seconds)` waits up to `seconds` for the process and returns
    its exit status or None while it runs (so a dying broker wakes us early
    instead of a sleep); `log_since_start()` is the text it logged since
    this start.
    """
    deadline = time.monotonic() + timeout
    while True:
        status = exit_status(0)
        if status is not None:
            raise NotReady("mosquitto exited with %s before accepting connections" % status)
        if log_says_running(log_since_start()) and _accepts(host, port):
            return
        if time.monotonic() > deadline:
            raise NotReady("mosquitto not ready on %s:%d after %s s" % (host, port, timeout))
        exit_status(0.05)


def _accepts(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
