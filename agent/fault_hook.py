"""Crash points for tests: SIGKILL the agent at a named point, once.

Tests only (like DAOZHANG_SIM_CLOCK): with DAOZHANG_FAULT_FILE unset (any
real deployment) `crash_point()` is one dictionary lookup and returns.  Set,
it names a file; when that file exists and holds the point's name, the file
is removed (so the restarted agent runs through) and the process kills
itself with SIGKILL: no cleanup, no flush, exactly a power cut or an OOM
kill at that line.

Points: `settlement_before_journal` (a settlement ack received and checked,
its type 2 record not yet committed), `settlement_after_journal` (committed,
the PUBACK not yet sent).
"""

import os
import signal

ENV = "DAOZHANG_FAULT_FILE"


def crash_point(name):
    path = os.environ.get(ENV)
    if not path:
        return
    try:
        with open(path) as f:
            armed = f.read().strip()
    except OSError:
        return
    if armed != name:
        return
    os.unlink(path)
    os.kill(os.getpid(), signal.SIGKILL)
