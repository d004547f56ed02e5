"""POS intake latency and throughput, each beside an in-process journal in the same run.

Prints one JSON line:
  intake_p50_vs_inprocess   p50 of a socket round trip to a committed receipt at
                            one client (the real daemon, a real Unix socket) /
                            p50 of an in-process durable append of the same
                            transaction (validate + JournalFile.append, one record
                            per commit, as `daozhang journal append` does), timed
                            in alternating blocks so both see the same disk
  intake_16_clients_per_s   committed transactions per second with 16 concurrent
                            POS clients (each its own process) on the socket
  intake_16_vs_durable_1    that / in-process durable appends per second at one
                            record per commit (group commit is what makes it > 1)
plus the raw figures they are made of, and where the 16 clients' run spent
its CPU: the daemon's (all its threads, user + system) and the 16 client
processes', in us per committed sale.

    python bench/intake.py [--seconds 3] [--dir DIR]

Targets (issue 3): intake_p50_vs_inprocess <= 1.5, intake_16_vs_durable_1 >= 3.
"""

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from daozhang.agent.core.intake.txn import validate  # noqa: E402
from daozhang.agent.core.journal import record  # noqa: E402
from daozhang.agent.journal_file import JournalFile, create_journal  # noqa: E402
from daozhang.signing import generate_keypair, load_signer  # noqa: E402
from daozhang.client import Client  # noqa: E402
from dztest.agent_daemon import AgentProcess, provision, sale  # noqa: E402


def open_inprocess(tmp):
    """A journal in this process, beside the daemon's on the same file system."""
    generate_keypair(os.path.join(tmp, "inproc"))
    path = os.path.join(tmp, "inproc.dzj")
    create_journal(path, "bench-inproc", size=128 << 20, segment_size=1 << 20)
    return JournalFile.open(path, load_signer(os.path.join(tmp, "inproc.key")))


def interleaved(journal, conn, seconds, block=25):
    """Alternate blocks of in-process appends and socket submits (one record per
    commit each), so both see the same disk weather; return both latency lists."""
    inproc, sock = [], []
    end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < end:
        for _ in range(block):
            txn = sale("B-%d" % i)
            t0 = time.perf_counter()
            # As `daozhang journal append` does: validate (PAN refusal happens
            # before any disk), then append durably.
            journal.append(record.TYPE_TRANSACTION, validate(txn))
            inproc.append(time.perf_counter() - t0)
            txn = sale("O-%d" % i)
            t0 = time.perf_counter()
            conn.submit(txn)
            sock.append(time.perf_counter() - t0)
            i += 1
    return inproc, sock


def socket_latencies(sock, seconds, prefix):
    lat = []
    with Client(sock) as conn:
        end = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < end:
            txn = sale("%s-%d" % (prefix, i))
            t0 = time.perf_counter()
            conn.submit(txn)
            lat.append(time.perf_counter() - t0)
            i += 1
    return lat


def _client_proc(args):
    sock, seconds, prefix, start_at = args
    while time.time() < start_at:
        time.sleep(0.001)
    cpu = time.process_time()      # the client's own work, not its wait at the start gate
    count = len(socket_latencies(sock, seconds, prefix))
    return count, time.process_time() - cpu


def process_cpu_s(pid):
    """User + system CPU seconds of process `pid` so far (all its threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--dir", default=None, help="where to put the journals (default: a temp dir)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dzbench", dir=args.dir)
    try:
        config, sock, _ = provision(tmp, journal_size="128MiB", segment_size="1MiB", device_id="bench-1")
        agent = AgentProcess(config, os.path.join(tmp, "agent.log")).start()
        journal = open_inprocess(tmp)
        try:
            with Client(sock) as conn:
                interleaved(journal, conn, 0.3)                    # warm-up
                inproc, one = interleaved(journal, conn, 2 * args.seconds)
            n = 16
            start_at = time.time() + 1.0
            daemon_before = process_cpu_s(agent.proc.pid)
            with multiprocessing.Pool(n) as pool:
                runs = pool.map(_client_proc, [(sock, args.seconds, "M%d" % c, start_at)
                                               for c in range(n)])
            daemon_cpu = process_cpu_s(agent.proc.pid) - daemon_before
            counts = [count for count, _ in runs]
            clients_cpu = sum(cpu for _, cpu in runs)
            # Durable appends at one record per commit, right after, same disk.
            durable, _ = [], None
            end = time.perf_counter() + args.seconds
            i = 0
            while time.perf_counter() < end:
                txn = sale("D-%d" % i)
                t0 = time.perf_counter()
                journal.append(record.TYPE_TRANSACTION, validate(txn))
                durable.append(time.perf_counter() - t0)
                i += 1
            assert agent.terminate() == 0, agent.log_tail()
        finally:
            journal.close()
            agent.close()
        p50_in = statistics.median(inproc)
        p50_sock = statistics.median(one)
        durable_1 = len(durable) / sum(durable)
        per_s = sum(counts) / args.seconds
        print(json.dumps({
            "intake_p50_vs_inprocess": round(p50_sock / p50_in, 3),
            "intake_16_clients_per_s": round(per_s, 1),
            "intake_16_vs_durable_1": round(per_s / durable_1, 3),
            "intake_p50_ms": round(p50_sock * 1000, 3),
            "inprocess_p50_ms": round(p50_in * 1000, 3),
            "durable_1_per_s": round(durable_1, 1),
            "intake_1_client_per_s": round(len(one) / sum(one), 1),
            "intake_16_daemon_cpu_us_per_sale": round(daemon_cpu / max(sum(counts), 1) * 1e6, 1),
            "intake_16_clients_cpu_us_per_sale": round(clients_cpu / max(sum(counts), 1) * 1e6, 1),
            "seconds": args.seconds,
        }))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
