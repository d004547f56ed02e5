"""A large settlement file in the documented CSV layout, written fast, and a
way to run `daozhang reconcile` on it in a child process and read the
child's peak RSS (os.wait4's ru_maxrss: that process only).

Rows (cycle of 10): one more settlement of the journal's sale S12 (matched:
a duplicate_settlement, issue 12's "many rows matching one sale"), nine of
other terminals (unknown settlements), every acquirer_ref distinct."""

import os
import subprocess
import sys
import time

from dztest import reconcile as sc

HEADER = ",".join(sc.COLUMNS) + "\n"


def write_big_csv(path, size_bytes):
    """Write about `size_bytes`; returns (rows, rows matching S12)."""
    s12 = dict((t["pos_txn_id"], t) for t in sc.scenario_transactions())["S12"]
    rows = matched = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(HEADER)
        written = len(HEADER)
        block = []
        while written < size_bytes:
            if rows % 10 == 0:
                line = ("D%011d,%s,%s,%s,%s,%s,sale,6222 02XX XXXX 0012,100000,550,99450,"
                        "2027-01-05T22:00:00+08:00,5812,2900\n"
                        % (rows, sc.MERCHANT, sc.TERMINAL, s12["rrn"], s12["auth_code"],
                           s12["time"]))
                matched += 1
            else:
                line = ("U%011d,%s,OT%06d,Q%011d,Z%05d,2027-01-04T09:%02d:00+08:00,sale,"
                        "6222 02XX XXXX %04d,%d,%d,%d,2027-01-05T22:00:00+08:00,5812,2900\n"
                        % (rows, sc.MERCHANT, rows % 1000, rows, rows % 100000, rows % 60,
                           rows % 10000, 1000 + rows % 5000, 6, 994 + rows % 5000))
            block.append(line)
            written += len(line)
            rows += 1
            if len(block) >= 10000:
                f.write("".join(block))
                block = []
        f.write("".join(block))
    return rows, matched


# The child reports its own VmHWM as it exits.  Not ru_maxrss: Linux carries
# the forking parent's RSS into the child's maxrss at exec, so a big test
# runner would be measured instead of the child.
_HWM = ("import atexit, os, runpy, sys\n"
        "def hwm():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            os.write(2, ('VmHWM_KB=%s\\n' % line.split()[1]).encode())\n"
        "atexit.register(hwm)\n"
        "sys.argv = sys.argv[1:]\n"
        "if sys.argv[0] == '-m':\n"
        "    sys.argv = sys.argv[1:]\n"
        "    runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
        "else:\n"
        "    code = sys.argv[1]\n"
        "    sys.argv = [sys.argv[0]] + sys.argv[2:]\n"
        "    exec(compile(code, '<peer>', 'exec'))\n")


def run_measured(argv, env=None):
    """(exit code, stdout, seconds, peak RSS in MiB) of a child process:
    argv is [python, "-m", module, ...] or [python, "-c", code, ...]."""
    start = time.perf_counter()
    wrapped = [argv[0], "-c", _HWM] + (argv[1:] if argv[1] == "-m" else ["-c"] + argv[2:])
    proc = subprocess.run(wrapped, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    kb = [line for line in proc.stderr.decode(errors="replace").splitlines()
          if line.startswith("VmHWM_KB=")]
    return (proc.returncode, proc.stdout, time.perf_counter() - start,
            int(kb[-1].split("=")[1]) / 1024.0)


def reconcile_argv(journal, pub, csv_path):
    return [sys.executable, "-m", "daozhang", "reconcile", "--journal", journal, "--pubkey", pub,
            "--settlement", csv_path, "--profile", sc.PROFILE, "--as-of", sc.AS_OF, "--json",
            "--format", "csv"]


PEER = ("import csv,sys\n"
        "n=0\n"
        "with open(sys.argv[1],newline='',encoding='utf-8') as f:\n"
        "    for row in csv.reader(f): n+=1\n"
        "print(n)\n")


def peer_argv(csv_path):
    """The peer: Python's csv module reading the same file, doing nothing else."""
    return [sys.executable, "-c", PEER, csv_path]
