"""`daozhang journal verify` as a user runs it, beside `sha256sum` on the same file.

A journal of N one-sale commits (each sale its own commit and signed
checkpoint, sectors of 4 KiB as on boards/generic-linux.toml) is verified by
whole `daozhang journal verify` processes, in both signature modes (SPEC
3.6.2), interleaved with `sha256sum` runs over the same file; the best of
each is kept.  Prints one JSON line:

  verify_vs_sha256sum                 whole verify process (newest signature per chained run) / sha256sum
  verify_all_signatures_vs_sha256sum  the same with --all-signatures (every checkpoint's signature)
  verify_sales_per_s                  sales verified per second by the default mode

    python bench/journal_verify.py [--sales 100000] [--runs 3] [--dir DIR]

Target (issue 17): verify_vs_sha256sum <= 4.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from daozhang.agent.core.journal import record
from daozhang.agent.journal_file import JournalFile, create_journal
from daozhang.signing import generate_keypair, load_signer
from daozhang.agent.storage import FileStorage

SECTOR = 4096
SEGMENT = 1 << 20


class _NoSyncStorage(FileStorage):
    """Building the input only: the bench measures reading, so commits skip fdatasync."""

    def sync(self):
        pass


def sale(n):
    return {"kind": "sale", "pos_txn_id": "V%09d" % n, "time": "2026-01-01T12:00:00+08:00",
            "amount": 1000 + n % 5000, "currency": "CNY", "card": "622202******%04d" % (n % 10000),
            "card_type": "debit", "auth_code": "%06d" % (n % 1000000), "rrn": "%012d" % n,
            "merchant_id": "102310058120001", "terminal_id": "T0000001", "mcc": "5812", "settlement": "T1"}


def build(path, key_prefix, sales):
    """N sales appended one per commit (each commit padded to a sector, SPEC 3.9)."""
    per_commit = SECTOR                            # a sale and its checkpoint fit one sector
    segments = sales * per_commit // (SEGMENT - 4096) + 4
    create_journal(path, "bench-pos", size=4096 + segments * SEGMENT, segment_size=SEGMENT, sector_size=SECTOR)
    signer = load_signer(key_prefix + ".key")
    with JournalFile.open(path, signer, storage=_NoSyncStorage(path)) as journal:
        for n in range(sales):
            journal.append(record.TYPE_TRANSACTION, sale(n))
    os.sync()


def timed(argv):
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return time.perf_counter() - start, proc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sales", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None, help="work directory (default: a temp dir on /tmp's disk)")
    args = parser.parse_args(argv)
    sha256sum = shutil.which("sha256sum")
    if sha256sum is None:
        print(json.dumps({"bench": "journal_verify", "error": "sha256sum not found"}))
        return 2
    workdir = tempfile.mkdtemp(prefix="dz-bench-verify-", dir=args.dir)
    try:
        prefix = os.path.join(workdir, "dev")
        generate_keypair(prefix)
        path = os.path.join(workdir, "sales.dzj")
        build_start = time.perf_counter()
        build(path, prefix, args.sales)
        build_s = time.perf_counter() - build_start
        verify = [sys.executable, "-m", "daozhang", "journal", "verify", path, "--pubkey", prefix + ".pub", "--json"]
        commands = {"sha256sum": [sha256sum, path], "verify": verify, "verify_all": verify + ["--all-signatures"]}
        best = {name: float("inf") for name in commands}
        reports = {}
        for _ in range(args.runs):                 # interleaved: the machine's load hits all alike
            for name, command in commands.items():
                seconds, proc = timed(command)
                if proc.returncode != 0:
                    raise SystemExit("%s failed (%d): %s" % (name, proc.returncode, proc.stderr.strip()))
                best[name] = min(best[name], seconds)
                if name != "sha256sum":
                    reports[name] = json.loads(proc.stdout)
        result = {
            "bench": "journal_verify",
            "sales": args.sales,
            "file_bytes": os.path.getsize(path),
            "build_s": round(build_s, 2),
            "sha256sum_s": round(best["sha256sum"], 3),
            "verify_s": round(best["verify"], 3),
            "verify_all_signatures_s": round(best["verify_all"], 3),
            "verify_vs_sha256sum": round(best["verify"] / best["sha256sum"], 2),
            "verify_all_signatures_vs_sha256sum": round(best["verify_all"] / best["sha256sum"], 2),
            "verify_sales_per_s": round(args.sales / best["verify"]),
            "signatures_checked": reports["verify"]["signatures_checked"],
            "signatures_checked_all": reports["verify_all"]["signatures_checked"],
            "checkpoints": reports["verify"]["checkpoints"],
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
