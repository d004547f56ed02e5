"""The acquirer's worst day (issue 11): prints ONE JSON line.

    python bench/outage.py                 # 100,000 overdue sales
    python bench/outage.py --alerts 5000   # a smaller outage, same figures

Side by side in one run, every sale dated relative to now (never stale):

- tick_ms_100k_vs_100: one watchdog tick (the daemon's on-disk sale index,
  SettlementWatchdog.tick + AlertMachine.tick; median of 50, a second apart)
  with N active overdue alerts, divided by the same with 100 (target <= 2); observe_us_100k_vs_100 beside
  it: one new overdue sale observed at N vs at 100 alerts.
- backend_alerts_per_s_at_100k_stored: alert messages a backend worker
  (Ingestor on SQLite) stores per second, the device already holding N
  stored alerts, divided by the same at 100 stored, in alternating blocks
  (target >= 0.8).  The
  messages carry no journal seq: the duplicate check is the one at stake.
- The real daemon (`daozhang agent run`), a real mosquitto (TLS + ACL) and
  a real backend process:
  - intake_p50_outage_vs_calm: p50 socket round trip (submit -> receipt)
    with N overdue sales all firing (once the backend holds them all; each
    probe sale is overdue too and fires), divided by the p50 of a calm peer
    agent (same provisioning, same broker and backend, no alerts), the two
    probed in alternating blocks of 25 so both see the same machine load
    (target <= 1.2); intake_p50_outage_vs_calm_before beside it divides by
    the same agent's p50 before the outage (a different minute of a shared
    machine: noisier);
  - receipt_p99_ms_during_burst: one POS client's round trip p99 while 16
    other clients submit the N overdue sales; receipt_e2e_p99_ms_during_burst:
    that client's sales from submit to their row at the backend (the issue's
    "receipts' e2e p99 during the burst");
  - alerts_to_backend_s (also printed as the issue's alerts_to_backend_s_100k):
    from the burst's start until the backend holds a firing
    settlement_overdue alert for every one of the N sales;
  - agent_rss_mib_alerts (also as the issue's agent_rss_mib_100k_alerts):
    VmHWM of the daemon holding the N firing alerts (target <= 48 MiB at
    100,000).
"""

import argparse
import json
import multiprocessing
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from daozhang.client import Client  # noqa: E402
from dztest.settlement_e2e import DAY_MS, alerts_json, backdated_sale, now_ms, rfc3339  # noqa: E402

DEVICE = "bench-outage"
CALM_DEVICE = "bench-calm"
BLOCK = 25


def overdue(i, prefix="O"):
    return backdated_sale("%s-%06d" % (prefix, i), "8%011d" % i, days_ago=3 + i % 4)


def calm(i):
    return dict(backdated_sale("C-%06d" % i, "9%011d" % i), time=rfc3339(now_ms()))


# -- in-process: the tick and the backend's per-message cost --------------------------

def _watchdog(tmp, name):
    from daozhang.agent.core.business_calendar import BusinessCalendar
    from daozhang.agent.core.settlement.alerts import AlertMachine
    from daozhang.agent.core.settlement.watchdog import SettlementWatchdog
    from daozhang.agent.journal_file import JournalFile, create_journal
    from daozhang.profile import load_profile
    from daozhang.agent.sale_index_sqlite import SqliteSaleIndex
    from daozhang.signing import generate_keypair, load_signer
    from daozhang.timezone import timezone_for
    from dztest.agent_daemon import PROFILE
    generate_keypair(os.path.join(tmp, name))
    path = os.path.join(tmp, name + ".dzj")
    create_journal(path, name, size=1 << 20, segment_size=64 << 10)
    journal = JournalFile.open(path, load_signer(os.path.join(tmp, name + ".key")))
    profile = load_profile(PROFILE)
    index = SqliteSaleIndex(path + ".watchdog.sqlite", journal)
    w = SettlementWatchdog(profile, BusinessCalendar.from_profile(
        profile, timezone_for(profile["timezone"])), index=index)
    return journal, index, w, AlertMachine("CNY")


def tick_cost(tmp, n):
    """(mean ms of a tick, mean us of observing one more overdue sale) at n alerts."""
    journal, index, w, m = _watchdog(tmp, "tick%d" % n)
    try:
        now = now_ms()
        for i in range(n):
            w.handle(("transaction", dict(overdue(i), seq=i + 1)))
        index.checkpoint(n)
        for _, obs in w.tick(now):
            m.observe(obs)
        while True:       # DUE_PER_TICK at a time
            more = w.tick(now)
            if not more:
                break
            for _, obs in more:
                m.observe(obs)
        assert m.status_summary()["firing"] == n, m.status_summary()["firing"]
        ticks = []
        for k in range(1, 51):
            t0 = time.perf_counter()
            for _, obs in w.tick(now + k * 1000):
                m.observe(obs)
            m.tick(now + k * 1000)
            ticks.append(time.perf_counter() - t0)
        observe = []
        for k in range(200):
            obs = {"kind": "settlement_overdue", "key": "NEW-%d" % k, "active": True,
                   "at": now, "since": now - DAY_MS, "escalate_at": now + DAY_MS,
                   "amount": 100, "currency": "CNY"}
            t0 = time.perf_counter()
            m.observe(obs)
            observe.append(time.perf_counter() - t0)
        return statistics.median(ticks) * 1000, statistics.median(observe) * 1e6
    finally:
        index.close()
        journal.close()


def _backend_store(tmp, stored):
    """A backend store whose device already holds `stored` alerts without a seq."""
    from daozhang.backend.service import Ingestor
    from daozhang.backend.store import open_store
    path = os.path.join(tmp, "backend-%d.db" % stored)
    store = open_store(path)
    db = sqlite3.connect(path)
    base = now_ms() - 10 * DAY_MS
    db.executemany("INSERT INTO alerts (device_id, seq, kind, state, severity, payload, at) "
                   "VALUES (?, NULL, 'security', 'firing', 'critical', ?, ?)",
                   ((DEVICE, json.dumps({"at": base + i}), base + i) for i in range(stored)))
    db.executemany("INSERT INTO alert_unjournaled VALUES (?, 'security', 'firing', ?)",
                   ((DEVICE, base + i) for i in range(stored)))
    db.commit()
    db.close()
    return store, Ingestor(store, None)


def backend_rates(tmp, small, big, messages=2000, block=50):
    """Alert messages stored per second by a backend worker whose device
    holds `small`, and `big`, alerts: in alternating blocks, so both see the
    same disk weather.  The messages carry no seq (the duplicate check that
    used to scan the device's alerts)."""
    from daozhang.agent.core import cbor
    stores = [_backend_store(tmp, small), _backend_store(tmp, big)]
    took = [0.0, 0.0]
    try:
        for start in range(0, messages, block):
            for side, (_, ingest) in enumerate(stores):
                payloads = [cbor.dumps({"v": 1, "dev": DEVICE, "at": now_ms() + i,
                                        "alert": {"kind": "security", "key": "k%d" % i,
                                                  "state": "firing", "severity": "critical",
                                                  "action": "firing"}})
                            for i in range(start, start + block)]
                t0 = time.perf_counter()
                for p in payloads:
                    ingest.alert(DEVICE, p)
                took[side] += time.perf_counter() - t0
        for (store, _), stored in zip(stores, (small, big)):
            assert store.stats()["alerts"] == stored + messages
    finally:
        for store, _ in stores:
            store.close()
    return messages / took[0], messages / took[1]


# -- the real daemon, broker and backend -------------------------------------------------

def round_trips(sock, txns):
    lat = []
    with Client(sock) as pos:
        for txn in txns:
            t0 = time.perf_counter()
            pos.submit(txn)
            lat.append(time.perf_counter() - t0)
    return lat


def alternating_round_trips(sides, count):
    """[(sock, make_txn)] probed in turn, BLOCK sales each: one list of
    round trips per side, all taken in the same stretch of machine time."""
    lats = [[] for _ in sides]
    clients = [Client(sock).connect() for sock, _ in sides]
    try:
        for start in range(0, count, BLOCK):
            for k, (pos, (_, make)) in enumerate(zip(clients, sides)):
                for i in range(start, min(count, start + BLOCK)):
                    txn = make(i)
                    t0 = time.perf_counter()
                    pos.submit(txn)
                    lats[k].append(time.perf_counter() - t0)
    finally:
        for pos in clients:
            pos.close()
    return lats


def _burst_client(args):
    sock, lo, hi = args
    with Client(sock) as pos:
        for i in range(lo, hi):
            pos.submit(overdue(i))
    return hi - lo


def _vm_hwm_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        return [int(line.split()[1]) / 1024.0 for line in f if line.startswith("VmHWM:")][0]


def _receipts_e2e_ms(world, sent):
    """Sorted ms from each probe sale's submit to its row at the backend
    (received_at, the backend's wall clock on this same machine)."""
    rows = world.store().receipts(DEVICE)
    return sorted(r["received_at"] - sent[r["payload"]["pos_txn_id"]] for r in rows
                  if r["payload"].get("pos_txn_id") in sent)


def _backend_firing(db_path):
    try:
        db = sqlite3.connect(db_path, timeout=30)
        try:
            # The `firing` action of each sale (its escalation is firing too).
            return db.execute("SELECT COUNT(DISTINCT json_extract(payload, '$.alert.key')) "
                              "FROM alerts WHERE device_id = ? AND kind = 'settlement_overdue' "
                              "AND json_extract(payload, '$.alert.action') = 'firing'",
                              (DEVICE,)).fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def daemon_figures(tmp, n, clients=16, probe=2000):
    from dztest.broker import Broker
    from dztest.sync_world import SyncWorld, wait_for
    from daozhang.host_tools.pki.bundle import make_test_pki
    pki = make_test_pki(os.path.join(tmp, "pki"), devices=(DEVICE, CALM_DEVICE))
    with Broker(pki=pki, persistence=False) as broker:
        world = SyncWorld(tmp, broker, os.path.join(tmp, "backend.db"))
        try:
            world.start_backend("b1")
            size = max(64, (n * 1600) >> 20) + 64
            config, sock, _ = world.provision_agent(DEVICE, journal_size="%dMiB" % size,
                                                    segment_size="1MiB")
            agent = world.start_agent(config)
            # The calm peer: the same provisioning, never an overdue sale.
            peer_config, peer_sock, _ = world.provision_agent(CALM_DEVICE, journal_size="%dMiB" % size,
                                                              segment_size="1MiB")
            world.start_agent(peer_config)
            round_trips(peer_sock, [calm(i) for i in range(200)])     # warm-up
            round_trips(sock, [calm(i) for i in range(200)])          # warm-up
            calm_lat = round_trips(sock, [calm(i) for i in range(200, 200 + probe)])
            # The burst: `clients` processes submit the n overdue sales; one more
            # client keeps submitting (overdue too) and times its round trips.
            during, stop = [], threading.Event()

            sent = {}         # the prober's pos_txn_id -> wall ms at submit (e2e to the backend)

            def prober():
                with Client(sock) as pos:
                    i = 0
                    while not stop.is_set():
                        txn = overdue(i, "P")
                        sent[txn["pos_txn_id"]] = time.time() * 1000
                        t0 = time.perf_counter()
                        pos.submit(txn)
                        during.append(time.perf_counter() - t0)
                        i += 1

            t0 = time.monotonic()
            probe_thread = threading.Thread(target=prober)
            probe_thread.start()
            step = (n + clients - 1) // clients
            with multiprocessing.Pool(clients) as pool:
                pool.map(_burst_client, [(sock, lo, min(n, lo + step))
                                         for lo in range(0, n, step)])
            burst_s = time.monotonic() - t0
            stop.set()
            probe_thread.join()
            total = n + len(during)
            wait_for(lambda: alerts_json(config).get("summary", {}).get("firing", 0) >= total,
                     3600, "every overdue sale firing on the terminal")
            judged_s = time.monotonic() - t0
            wait_for(lambda: _backend_firing(world.db) >= total, 3600,
                     "every firing alert at the backend")
            to_backend_s = time.monotonic() - t0
            # The outage's steady state: every alert firing, the backlog sent.
            wait_for(lambda: world.status(config).get("backlog", 1 << 30) < 1000, 3600,
                     "the sync backlog drained")
            outage_lat, peer_lat = alternating_round_trips(
                [(sock, lambda i: overdue(i, "Q")), (peer_sock, lambda i: calm(10 ** 6 + i))], probe)
            hwm = _vm_hwm_mib(agent.proc.pid)
            e2e = _receipts_e2e_ms(world, sent)
            display = alerts_json(config).get("summary", {}).get("display")
            agent.terminate()
        finally:
            world.close()
    p50_calm = statistics.median(calm_lat)
    p50_outage = statistics.median(outage_lat)
    p50_peer = statistics.median(peer_lat)
    during.sort()
    return {
        "intake_p50_outage_vs_calm": round(p50_outage / p50_peer, 3),
        "intake_p50_ms_calm_peer": round(p50_peer * 1000, 3),
        "intake_p50_outage_vs_calm_before": round(p50_outage / p50_calm, 3),
        "intake_p50_ms_calm": round(p50_calm * 1000, 3),
        "intake_p50_ms_outage": round(p50_outage * 1000, 3),
        "receipt_p99_ms_during_burst": round(during[int(0.99 * (len(during) - 1))] * 1000, 3)
        if during else None,
        "receipt_e2e_p99_ms_during_burst": round(e2e[int(0.99 * (len(e2e) - 1))], 1) if e2e else None,
        "receipt_e2e_p50_ms_during_burst": round(e2e[len(e2e) // 2], 1) if e2e else None,
        "burst_sales_per_s": round(n / burst_s, 1),
        "alerts_judged_s": round(judged_s, 1),
        "alerts_to_backend_s": round(to_backend_s, 1),
        "alerts_to_backend_s_100k": round(to_backend_s, 1),     # the name (at --alerts N)
        "agent_rss_mib_alerts": round(hwm, 1),
        "agent_rss_mib_100k_alerts": round(hwm, 1),            # the name (at --alerts N)
        "terminal_display": display,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", type=int, default=100000)
    ap.add_argument("--no-daemon", action="store_true", help="only the in-process figures")
    args = ap.parse_args()
    n = args.alerts
    tmp = tempfile.mkdtemp(prefix="dzoutage", dir=os.environ.get("DZ_BENCH_DIR", "/tmp"))
    try:
        tick_small, observe_small = tick_cost(tmp, 100)
        tick_big, observe_big = tick_cost(tmp, n)
        rate_small, rate_big = backend_rates(tmp, 100, n)
        out = {
            "alerts": n,
            "tick_ms_100k_vs_100": round(tick_big / tick_small, 3),
            "tick_ms_at_100": round(tick_small, 4),
            "tick_ms_at_n": round(tick_big, 4),
            "observe_us_100k_vs_100": round(observe_big / observe_small, 3),
            "backend_alerts_per_s_at_100k_stored": round(rate_big / rate_small, 3),
            "backend_alerts_per_s_at_100": round(rate_small, 1),
            "backend_alerts_per_s_at_n": round(rate_big, 1),
        }
        if not args.no_daemon:
            out.update(daemon_figures(tmp, n))
        print(json.dumps(out, ensure_ascii=False, sort_keys=True))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
