"""Reconciling a large settlement file: rows per second and peak memory,
beside Python's csv module reading the same file in the same run.

Prints one JSON line:
  rows_per_s            settlement rows reconciled per second by `daozhang
                        reconcile` (the real CLI in a child process: read,
                        mask, match, check, summarise)
  peak_rss_mib          that process's peak RSS (target, issue 12: <= 200 MiB
                        for a 200 MB file)
  peer_rows_per_s       csv.reader over the same file, counting rows only
  ratio_to_peer         rows_per_s / peer_rows_per_s
  duplicates_of_one_sale  rows matching the one sale S12 (issue 12: 136k
                        duplicates must not go quadratic)
plus the raw figures.

    python bench/settlement_files.py [--mb 200] [--dir DIR]
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from dztest import reconcile as sc  # noqa: E402
from dztest.settlement_big import (  # noqa: E402
    peer_argv, reconcile_argv, run_measured, write_big_csv)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--dir")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(dir=args.dir)
    try:
        journal, pub, _ = sc.write_journal(tmp)
        path = os.path.join(tmp, "big.csv")
        rows, matched = write_big_csv(path, args.mb << 20)
        code, out, seconds, rss = run_measured(reconcile_argv(journal, pub, path))
        summary = json.loads(out)
        _code, _out, peer_seconds, peer_rss = run_measured(peer_argv(path))
        counts = summary["counts"]
        result = {"bench": "settlement_files", "file_mb": round(os.path.getsize(path) / 2**20, 1),
                  "rows": rows, "reconcile_s": round(seconds, 2),
                  "rows_per_s": round(rows / seconds), "peak_rss_mib": round(rss, 1),
                  "rss_target_mib": 200, "peer_rows_per_s": round(rows / peer_seconds),
                  "peer_peak_rss_mib": round(peer_rss, 1),
                  "ratio_to_peer": round(peer_seconds / seconds, 3),
                  "duplicates_of_one_sale": counts["duplicate_settlement"] and matched - 1,
                  "unknown_settlements": counts["unknown_settlement"], "exit_code": code}
        print(json.dumps(result))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
