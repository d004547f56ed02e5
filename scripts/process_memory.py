"""Where a running process's resident memory is: one JSON object on stdout.

    python scripts/process_memory.py PID [--top 12]

From /proc/PID/status (VmHWM, VmRSS, RssAnon, RssFile, Threads) and
/proc/PID/smaps (resident KiB per mapping, grouped by file name; anonymous
mappings listed by size, since pymalloc's 1 MiB arenas and glibc's thread
arenas both show up there, adjacent ones merged by the kernel).  Used to
attribute the agent daemon's memory during an outage burst (docs/DESIGN.md
"The daemon's memory"); the in-process side of that attribution (tracemalloc,
malloc_info, sqlite3_memory_used) needs a hook inside the process and is
described there.  Exit 2 if the process cannot be read.
"""

import argparse
import collections
import json
import os
import re
import sys

_MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$")


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = round(int(value.split()[0]) / 1024.0, 1)
            elif key == "Threads":
                out[key] = int(value)
    return out


def mappings(pid):
    """({name: resident KiB}, [(resident KiB, size KiB) of each anonymous mapping])."""
    by_name, anon, name, size = collections.Counter(), [], None, 0
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            m = _MAPPING.match(line)
            if m:
                path = m.group(3).strip()
                name = os.path.basename(path) if path.startswith("/") else (path or "[anon]")
                size = (int(m.group(2), 16) - int(m.group(1), 16)) >> 10
            elif line.startswith("Rss:"):
                kib = int(line.split()[1])
                by_name[name] += kib
                if name == "[anon]" and kib:
                    anon.append((kib, size))
    return by_name, sorted(anon, reverse=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pid", type=int)
    ap.add_argument("--top", type=int, default=12, help="mappings to list (default 12)")
    args = ap.parse_args(argv)
    try:
        summary = status(args.pid)
        by_name, anon = mappings(args.pid)
    except OSError as exc:
        print("process_memory: cannot read process %d: %s" % (args.pid, exc.strerror), file=sys.stderr)
        return 2
    summary["mib_by_mapping"] = {name: round(kib / 1024.0, 1) for name, kib in by_name.most_common(args.top)}
    summary["anon_mappings_kib"] = [{"resident": r, "size": s} for r, s in anon[:args.top]]
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
