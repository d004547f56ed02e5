"""How fast a terminal applies settlement acks (issue 10: 11-22 rows/s before).

The settlement plugin in-process on a real journal file (fsync), its SQLite
sale index beside it, N sales committed first, then one genuine signed
settlement ack per sale, each matching its sale (the watchdog's checks run,
a type 2 record is journaled per row).  Two ways, in the same run on the
same disk:

  batched    acks arriving as the backend sends them now (SPEC 7.8.5:
             batches of 200 per message), one journal commit and one index
             commit per batch: SettlementPlugin.on_settlements
  one_by_one the peer: the same work one ack per message, one commit each
             (what the agent did for every ack before): on_settlement

Prints one JSON line: settlement_rows_per_s (batched), the peer's rate and
their ratio.  Target: settlement_rows_per_s >= 1000.

    python bench/settlement_apply.py [--rows 4000] [--peer-rows 300] [--dir DIR]
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from daozhang.agent.core import cbor  # noqa: E402
from daozhang.agent.core.journal import record
from daozhang.agent.core.sync import settlement_ack as sa  # noqa: E402
from daozhang.profile import load_profile  # noqa: E402
from daozhang.agent.settlement_plugin import SettlementPlugin  # noqa: E402
from daozhang.backend.ack import AckSigner  # noqa: E402
from dztest.agent_daemon import PROFILE, sale  # noqa: E402
from dztest.settlement_e2e import now_ms, plain_row, rfc3339  # noqa: E402
from dztest.sync import make_journal, signer  # noqa: E402

DEVICE = "pos-bench-1"
BATCH = 200


def _setup(tmp, rows):
    os.makedirs(tmp, exist_ok=True)
    _, journal = make_journal(tmp, device=DEVICE, size=64 << 20, segment_size=1 << 20)
    plugin = SettlementPlugin(journal, load_profile(PROFILE), DEVICE, os.path.join(tmp, "alerts.json"),
                              lambda event, level="info", **kw: None, now_ms, lambda: True,
                              outputs={"console": False})
    backend = AckSigner(signer(9))
    when = rfc3339(now_ms() - 3600 * 1000)
    acks = []
    for i in range(rows):
        rrn = "%012d" % (500000000000 + i)
        txn = sale("B-%06d" % i, amount=10000, rrn=rrn, auth_code="A%05d" % (i % 100000), time=when)
        seq = journal.append(record.TYPE_TRANSACTION, txn).seq
        plugin.on_transaction(seq, txn)
        payload = sa.encode(DEVICE, os.urandom(16), now_ms(), seq, plain_row("ACQ-%06d" % i, rrn),
                            backend.kid, backend.signer.sign, i + 1)
        acks.append((cbor.loads(payload), payload))
    return journal, plugin, acks


def run_batched(tmp, rows):
    journal, plugin, acks = _setup(tmp, rows)
    try:
        t0 = time.perf_counter()
        for k in range(0, len(acks), BATCH):
            plugin.on_settlements(acks[k:k + BATCH])
        seconds = time.perf_counter() - t0
        assert plugin.counts["settlement_acks"] == rows, plugin.counts
        assert plugin.settle_cursor.value == rows
        return rows / seconds
    finally:
        plugin.stop()
        journal.close()


def run_one_by_one(tmp, rows):
    journal, plugin, acks = _setup(tmp, rows)
    try:
        t0 = time.perf_counter()
        for msg, payload in acks:
            plugin.on_settlement(msg, payload)
        seconds = time.perf_counter() - t0
        assert plugin.counts["settlement_acks"] == rows, plugin.counts
        return rows / seconds
    finally:
        plugin.stop()
        journal.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--peer-rows", type=int, default=300)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="dz-bench-settle-", dir=args.dir)
    try:
        batched = run_batched(os.path.join(base, "batched"), args.rows)
        single = run_one_by_one(os.path.join(base, "single"), args.peer_rows)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps({"bench": "settlement_apply", "settlement_rows_per_s": round(batched, 1),
                      "one_by_one_rows_per_s": round(single, 1),
                      "batched_vs_one_by_one": round(batched / single, 2),
                      "rows": args.rows, "peer_rows": args.peer_rows, "batch": BATCH,
                      "target_rows_per_s": 1000}))


if __name__ == "__main__":
    main()
