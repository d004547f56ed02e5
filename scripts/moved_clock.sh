#!/usr/bin/env bash
# Run a command with the system's wall clock moved ahead (libfaketime), to
# prove the suite passes on any date:
#
#     scripts/moved_clock.sh +365d .venv/bin/python -m pytest -q tests/agent
#
# OFFSET is libfaketime's relative form (+365d, +3d, +12h).  Every process
# the command starts (agent daemons, mosquitto, node, chromium) inherits the
# same offset, so they all agree on "now".
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 OFFSET COMMAND [ARGS...]   (OFFSET like +365d)" >&2
    exit 2
fi
offset=$1
shift
case "$offset" in
    [+-][0-9]*) ;;
    *) echo "moved_clock: OFFSET must be relative, like +365d (got '$offset')" >&2; exit 2 ;;
esac

lib=$(compgen -G '/usr/lib/*/faketime/libfaketime.so.1' | head -n 1 || true)
[ -n "$lib" ] || [ ! -f /usr/lib/faketime/libfaketime.so.1 ] || lib=/usr/lib/faketime/libfaketime.so.1
if [ -z "$lib" ]; then
    echo "moved_clock: libfaketime is not installed (apt-get install libfaketime, or run scripts/setup.sh)" >&2
    exit 2
fi

# libfaketime 0.9.10 breaks time.sleep() when the monotonic clock is not
# faked; a small preloaded fix (scripts/faketime_monotonic_fix.c) sends
# monotonic sleeps straight to the kernel.  Built once into build/ (gitignored).
repo=$(cd "$(dirname "$0")/.." && pwd)
fix_src="$repo/scripts/faketime_monotonic_fix.c"
fix="$repo/build/moved_clock/faketime_monotonic_fix.so"
if [ ! -f "$fix" ] || [ "$fix_src" -nt "$fix" ]; then
    if ! command -v gcc >/dev/null 2>&1; then
        echo "moved_clock: gcc is needed to build $fix (apt-get install gcc libc6-dev, or run scripts/setup.sh)" >&2
        exit 2
    fi
    mkdir -p "$(dirname "$fix")"
    gcc -shared -fPIC -O2 -Wall -o "$fix.$$.tmp" "$fix_src" -ldl
    mv "$fix.$$.tmp" "$fix"
fi

# Set FAKETIME ourselves rather than use the `faketime` wrapper: the wrapper
# turns "+365d" into an absolute start time that every new process restarts
# from, so an agent restarted by a test would see its clock go backwards
# relative to the records it wrote.  A relative FAKETIME is "real time plus
# the offset" in every process.
export FAKETIME="$offset"
export LD_PRELOAD="$fix:$lib${LD_PRELOAD:+:$LD_PRELOAD}"
# Only the wall clock moves.  Faking CLOCK_MONOTONIC too gains nothing (the
# code measures intervals with it, never dates) and risks timed waits
# (threading, select, node's event loop) computing their deadlines on a
# clock that jumped: with it faked, Python's threading.Event.wait(timeout)
# never returns under libfaketime 0.9.10.
export FAKETIME_DONT_FAKE_MONOTONIC=1
exec "$@"
