"""scripts/process_memory.py: a process's resident memory by mapping.

Invariant: the per-mapping figures add up to the process's own RSS (as
/proc/PID/status gives it, within rounding and what changes between the
reads), the file-backed ones name the libraries, and a process that is
not there is exit 2 with one line.
"""

import json
import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "scripts", "process_memory.py")


def test_the_mappings_add_up_to_the_processs_rss():
    out = subprocess.run([sys.executable, SCRIPT, str(os.getpid()), "--top", "1000"],
                         capture_output=True, text=True, check=True).stdout
    summary = json.loads(out)
    total = sum(summary["mib_by_mapping"].values())
    assert abs(total - summary["VmRSS"]) <= max(1.0, 0.05 * summary["VmRSS"])
    assert any(name.startswith("libpython") or name.startswith("python")
               for name in summary["mib_by_mapping"])
    assert summary["Threads"] >= 1 and summary["VmHWM"] >= summary["VmRSS"] - 1


def test_a_missing_process_is_exit_2():
    done = subprocess.run([sys.executable, SCRIPT, "0"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("process_memory: cannot read process 0")
