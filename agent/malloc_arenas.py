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

Fixed mmap and trim thresholds too (128 KiB and 256 KiB, glibc's starting
values).  glibc raises its mmap threshold each time a large mmapped block
is freed, up to 32 MiB, and its trim threshold with it: after the first
1 MiB journal read, every later one comes from the heap and the freed space
stays resident.  A fixed threshold (any mallopt of it turns the raising
off) sends each large block back when freed: in a 100,000-sale outage burst
on a quiet machine the daemon's peak fell 49.3 -> 48.1 MiB.  The 64 KiB
receive buffers of the POS socket stay below it (no mmap per read).
"""

import os

M_TRIM_THRESHOLD = -1     # glibc's malloc.h
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD = 128 << 10
TRIM_THRESHOLD = 256 << 10
# (mallopt parameter, value, the environment variable that sets it instead)
SETTINGS = ((M_ARENA_MAX, ARENAS, "MALLOC_ARENA_MAX"),
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_"),
            (M_TRIM_THRESHOLD, TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_"))


def cap_malloc_arenas(settings=SETTINGS):
    """The settings made here, by environment variable name; one already
    in the environment is left as the operator set it; none on a C library
    without mallopt (not glibc)."""
    try:
        import ctypes
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return []
    done = []
    for param, value, variable in settings:
        if not os.environ.get(variable) and mallopt(param, value) == 1:
            done.append(variable)
    return done
