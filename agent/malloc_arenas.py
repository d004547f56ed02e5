"""Cap glibc's malloc arenas in the daemon (docs/DESIGN.md "The daemon's memory").

glibc gives a thread that finds the main arena busy an arena of its own,
up to 8 per core, and each keeps the memory its thread freed for reuse.
The daemon runs seven threads (intake I/O and commit, settlement, MQTT,
service port, scrub, main): during an outage burst their arenas held about
3 MiB freed but resident.  Two arenas are enough for threads that mostly
wait on sockets and fsync.

The shipped unit sets MALLOC_ARENA_MAX=2 (glibc reads it at the first
malloc); a daemon started any other way (tests, the demo, a shell) caps
itself here with mallopt(M_ARENA_MAX), which works at run time but only for
threads not yet started: run_from_config calls it before assembling.
"""

import os

M_ARENA_MAX = -8          # glibc's malloc.h
ARENAS = 2


def cap_malloc_arenas(limit=ARENAS):
    """True when the cap was set here; False when MALLOC_ARENA_MAX is
    already in the environment (the operator's value stands) or the C
    library has no such knob (not glibc)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        import ctypes
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return mallopt(M_ARENA_MAX, limit) == 1
