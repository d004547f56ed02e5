"""The backend's verification CPU per record: prints ONE JSON line (issue 17).

    python bench/backend_check.py [--commits 100000]

A terminal selling one sale at a time writes one signed checkpoint per
sale.  This builds such a journal (the agent's JournalFile over in-memory
storage: `--commits` one-sale commits, every checkpoint Ed25519-signed),
cuts it into receipts messages of 64 KiB as the sync core sends them, and
times the backend's check of every message (backend/ingest.check_batch:
decode, CRC, chain, checkpoints, signatures; the store is not involved):

- backend_check_us_per_record: CPU per record (sale, checkpoint or the
  commit's sector padding; _per_sale: per one-sale commit) with the default, the newest signature of each chained run (SPEC 6.7.1);
- backend_check_us_per_record_all: the same with every signature (audit);
- all_vs_newest: the audit's time over the default's, same run;
- ed25519_verify_us: one signature check alone (cryptography), the peer.

The whole backend (store, ack, broker) per record is bench/fleet.py's
backend_us_per_record.
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from daozhang.agent.core.journal import record  # noqa: E402
from daozhang.agent.core.sync import sync_messages as msgs  # noqa: E402
from daozhang.agent.signer import Ed25519Signer  # noqa: E402
from daozhang.agent.sync_journal import FrameReader  # noqa: E402
from daozhang.backend import ingest  # noqa: E402
from daozhang.fleet.terminal import memory_journal, sale_payload, _iso  # noqa: E402

DEVICE = "bench-pos-000001"
MESSAGE_BYTES = 65536          # what the sync core reads per receipts message


def one_sale_commits(signer, commits):
    """(receipts payloads, records) of a journal of `commits` one-sale commits."""
    journal = memory_journal(DEVICE, signer, commits * 1400 + (4 << 20))
    now_ms = int(time.time() * 1000)
    for n in range(commits):
        journal.append(record.TYPE_TRANSACTION, sale_payload(DEVICE, n, 1000 + n % 9000,
                                                              "102290058120001", _iso(now_ms)))
    reader = FrameReader(journal)
    payloads, seq, count = [], 0, 0
    while seq < journal.ring.next_seq:
        recs, seq, _ = reader.read(seq, MESSAGE_BYTES)
        payloads.append(msgs.encode_receipts(DEVICE, [r[2] for r in recs]))
        count += len(recs)
    return payloads, count


def check_all(public_bytes, payloads, all_signatures):
    """CPU seconds to check every message; raises if any is not clean."""
    start = time.process_time()
    for payload in payloads:
        out = ingest.check_batch(DEVICE, public_bytes, payload, all_signatures=all_signatures)
        if out.findings:
            raise SystemExit("bench journal has findings: %r" % out.findings[:1])
    return time.process_time() - start


def verify_us(signer, rounds=2000):
    key = Ed25519PrivateKey.from_private_bytes(bytes([5]) * 32)
    message, sig = b"x" * 120, key.sign(b"x" * 120)
    public = key.public_key()
    start = time.process_time()
    for _ in range(rounds):
        public.verify(sig, message)
    return (time.process_time() - start) / rounds * 1e6


def check_figures(commits):
    """The figures above, as a dict."""
    signer = Ed25519Signer(Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32))
    payloads, records = one_sale_commits(signer, commits)
    # Interleaved rounds, best of each: the machine is shared and noisy.
    newest, audit = [], []
    for _ in range(3):
        newest.append(check_all(signer.public_bytes, payloads, False))
        audit.append(check_all(signer.public_bytes, payloads, True))
    return {
        "backend_commits": commits,
        "backend_records": records,
        "backend_messages": len(payloads),
        "backend_check_us_per_record": round(min(newest) / records * 1e6, 2),
        "backend_check_us_per_record_all": round(min(audit) / records * 1e6, 2),
        "backend_check_us_per_sale": round(min(newest) / commits * 1e6, 2),
        "backend_check_us_per_sale_all": round(min(audit) / commits * 1e6, 2),
        "all_vs_newest": round(min(audit) / min(newest), 3),
        "ed25519_verify_us": round(verify_us(signer), 2),
        "loadavg_1m": os.getloadavg()[0],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=100_000)
    args = parser.parse_args(argv)
    print(json.dumps(dict({"bench": "backend_check"}, **check_figures(args.commits))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
