"""Fleet benchmark: prints ONE JSON line (issue 17).

    python bench/fleet.py                 # 10,000 terminals (takes many minutes)
    python bench/fleet.py --terminals 2000 --backlog 50 --steady-s 30   # smaller

Everything runs on this machine: mosquitto (the shipped TLS + ACL config),
PostgreSQL (a fresh schema per phase), the backend supervisor with W
worker processes, and `daozhang sim` in --sim-processes processes.

- lag_p99_s: N terminals x 2 sales/min for --steady-s seconds: p99 of
  sale commit -> the backend's ack covering it, at the terminal.
- storm_drain_s_1w / _2w: N terminals x K backlog records each (the
  reconnect storm after a regional outage), 1 then 2 workers: every
  terminal connects first with its backlog held, then all backlogs are
  released at once; seconds from the release until every journal is
  acked (stored and acked by the backend: all of its work on the backlog
  is inside).  storm_total_s_* also count the connect storm from the
  first connect.  workers_2_vs_1 = drain_1w / drain_2w (target >= 1.6);
  cores_during_drain_*: cores used per group of processes in the drain
  (bench/fleet_cpu.py), which is what bounds the ratio on a small machine.
- sim_10k_records_per_s: records acked per second during the faster
  storm's drain (the whole pipeline: simulator, broker, workers, PostgreSQL).
- backend_us_per_record: CPU (user + system) of the worker processes per
  record stored and acked, in the 1-worker ingest run below.
- ingest_vs_raw_pg: the same receipts messages (the terminals' real
  frames) published by one client to a plain broker; the backend (1
  worker: verify, store exactly once, sign and publish acks) vs a raw peer
  in the same run: paho subscriber + psycopg executemany of the same rows,
  no verification, no ack.  Records/s over records/s (target >= 0.5).
  --audit runs the backend again with --all-signatures on the same messages
  (backend_us_per_record_all_signatures: the cost of every signature).
- loadavg_1m_start / _end: the machine's load, since it is shared.

Phases and what they print go to stderr; a storm phase prints its
figures as it ends (a long run is not lost to a later failure).
"""

import argparse
import hashlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))


def proc_cpu(pid):
    """user + system seconds of a live process (0 if it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sim_phase(broker, workers, terminals, rate, backlog, duration, drain_timeout, processes,
              hold_backlog, status_interval_s=10):
    """One run of the simulator against a fresh backend: the sim's report,
    with the cores each group of processes used while the backlog drained."""
    from dztest.fleet_world import FleetWorld
    from dztest.pg import fresh_schema
    from daozhang.fleet.sim import run_sim
    from fleet_cpu import CpuSampler

    with fresh_schema() as db:
        tmp = tempfile.mkdtemp(prefix="dzfleet-")
        world = FleetWorld(tmp, broker, db)
        try:
            world.start_backend(workers=workers)
            settings = world.sim_settings(terminals, rate, duration, backlog, drain_timeout,
                                          processes=processes, hold_backlog=hold_backlog,
                                          stall_timeout=600, status_interval_s=status_interval_s)
            with CpuSampler(world.proc.pid, broker.process.pid) as cpu:
                report = run_sim(settings)
                load = os.getloadavg()
                t = report.pop("monotonic")
                if t["released"] is not None:
                    report["cores_during_drain"] = cpu.window(t["released"], t["ended"])
                    report["cores_during_connect"] = cpu.window(t["started"], t["released"])
            report["loadavg"] = [round(v, 2) for v in load]
            print("phase workers=%d rate=%s backlog=%d: %s" % (
                workers, rate, backlog, json.dumps(report, sort_keys=True)),
                file=sys.stderr, flush=True)
            return report
        finally:
            world.close()


# -- ingest: the backend vs a raw peer on the same messages --------------------------

def build_messages(pki_dir, cache, terminals, backlog, backend_pub):
    """(identities, [(device, receipts payload)]): every terminal's journal as
    the sync core would send it, 64 KiB of frames per message."""
    from daozhang.agent.core.sync import sync_messages as msgs
    from daozhang.fleet.identities import ensure_identities
    from daozhang.fleet.terminal import SimTerminal

    identities, _ = ensure_identities(pki_dir, cache, terminals, "ingest")
    messages = []
    for ident in identities:
        t = SimTerminal(ident, backend_pub, backlog, 10)
        seq = 0
        while seq < t.journal.ring.next_seq:
            records, end, _ = t.reader.read(seq, 65536)
            messages.append((ident.device_id, msgs.encode_receipts(ident.device_id,
                                                                   [r[2] for r in records])))
            seq = end
    return identities, messages


def publish_all(broker, messages, window=200):
    import paho.mqtt.client as mqtt
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub",
                         protocol=mqtt.MQTTv5)
    slots = threading.Semaphore(window)
    done = threading.Event()
    count = [0]

    def on_publish(c, u, mid, rc, props):
        count[0] += 1
        slots.release()
        if count[0] >= len(messages):
            done.set()
    client.on_publish = on_publish
    client.max_inflight_messages_set(window)
    client.connect(broker.host, broker.port)
    client.loop_start()
    for device, payload in messages:
        slots.acquire()
        client.publish("daozhang/v1/%s/receipts" % device, payload, qos=1)
    done.wait(600)
    client.loop_stop()
    client.disconnect()


def wait_rows(db, total, timeout=1800):
    """Seconds until `records` holds `total` rows (polled: a measurement)."""
    import psycopg
    t0 = time.monotonic()
    with psycopg.connect(db, autocommit=True) as c:
        while time.monotonic() - t0 < timeout:
            n = c.execute("SELECT count(*) FROM records").fetchone()[0]
            if n >= total:
                return time.monotonic() - t0
            time.sleep(0.1)
    raise RuntimeError("only %d of %d rows after %ds" % (n, total, timeout))


def backend_ingest(broker, tmp, identities, messages, total, all_signatures=False):
    from dztest.pg import fresh_schema
    from daozhang.signing import generate_keypair
    from daozhang.fleet.sim import register_devices

    with fresh_schema() as db:
        register_devices(db, identities)
        name = "ingest-audit" if all_signatures else "ingest"     # a run's own files
        key = os.path.join(tmp, name + "-backend")
        generate_keypair(key)
        config = os.path.join(tmp, name + ".toml")
        log = os.path.join(tmp, name + ".log")
        with open(config, "w") as f:
            f.write('[broker]\nhost = "%s"\nport = %d\ntls = false\n[backend]\nkey = "%s"\n'
                    'db = "%s"\nshare_group = "bench-9f2e"\nlog = "%s"\n'
                    % (broker.host, broker.port, key + ".key", db, log))
        argv = [sys.executable, "-m", "daozhang", "backend", "run", "--config", config]
        proc = subprocess.Popen(argv + (["--all-signatures"] if all_signatures else []),
                                stdin=subprocess.DEVNULL)
        try:
            t0 = time.monotonic()
            while "event=subscribed" not in (open(log).read() if os.path.exists(log) else ""):
                if proc.poll() is not None or time.monotonic() - t0 > 60:
                    raise RuntimeError("backend did not start")
                time.sleep(0.1)
            cpu0 = proc_cpu(proc.pid)
            threading.Thread(target=publish_all, args=(broker, messages), daemon=True).start()
            seconds = wait_rows(db, total)
            cpu = proc_cpu(proc.pid) - cpu0
        finally:
            proc.terminate()
            proc.wait(30)
    return seconds, cpu


def raw_ingest(broker, identities, messages, total):
    """The peer: subscribe, decode frames just enough for the columns,
    executemany into `records`.  No CRC, chain, signature, lock or ack."""
    import cbor2
    import paho.mqtt.client as mqtt
    import psycopg
    from dztest.pg import fresh_schema
    from daozhang.agent.core.journal import record
    from daozhang.backend.ingest import jsonable
    from daozhang.fleet.sim import register_devices

    with fresh_schema() as db:
        register_devices(db, identities)
        inbox = queue.Queue()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-raw",
                             protocol=mqtt.MQTTv5)
        subscribed = threading.Event()
        client.on_connect = lambda c, u, f, rc, p: c.subscribe("daozhang/v1/+/receipts", qos=1)
        client.on_subscribe = lambda *a: subscribed.set()
        client.on_message = lambda c, u, m: inbox.put(m)
        client.connect(broker.host, broker.port)
        client.loop_start()
        subscribed.wait(30)
        stop = threading.Event()

        def writer():
            with psycopg.connect(db) as conn:
                while not stop.is_set():
                    try:
                        m = inbox.get(timeout=0.2)
                    except queue.Empty:
                        continue
                    msg = cbor2.loads(m.payload)
                    device = m.topic.split("/")[2]
                    rows = []
                    now = int(time.time() * 1000)
                    for frame in msg["frames"]:
                        body = cbor2.loads(frame[record.HEADER_SIZE:-record.CRC_SIZE])
                        rows.append((device, body[0], frame[2], hashlib.sha256(frame[:-4]).digest(),
                                     body[1], frame, json.dumps(jsonable(body[5])), now))
                    with conn.cursor() as cur:
                        cur.executemany("INSERT INTO records (device_id, seq, type, hash, prev_hash, "
                                        "frame, payload, received_at) VALUES (%s, %s, %s, %s, %s, %s, "
                                        "%s, %s) ON CONFLICT DO NOTHING", rows)
                    conn.commit()
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        threading.Thread(target=publish_all, args=(broker, messages), daemon=True).start()
        try:
            return wait_rows(db, total)
        finally:
            stop.set()
            thread.join(10)
            client.loop_stop()
            client.disconnect()


def ingest_phase(pki, terminals, backlog, audit=False):
    from dztest.broker import Broker
    tmp = tempfile.mkdtemp(prefix="dzingest-")
    backend_pub = b"\x00" * 32      # the terminals never check an ack here
    ca_dir = os.path.dirname(pki.ca_cert)
    identities, messages = build_messages(ca_dir, os.path.join(tmp, "cache"), terminals, backlog,
                                          backend_pub)
    import cbor2
    total = sum(len(cbor2.loads(p)["frames"]) for _, p in messages)
    with Broker(tls=False, persistence=False) as broker:
        raw_s = raw_ingest(broker, identities, messages, total)
    with Broker(tls=False, persistence=False) as broker:
        backend_s, cpu = backend_ingest(broker, tmp, identities, messages, total)
    audit_figures = {}
    if audit:       # the same messages, every checkpoint signature verified (SPEC 6.7.1)
        with Broker(tls=False, persistence=False) as broker:
            audit_s, audit_cpu = backend_ingest(broker, tmp, identities, messages, total, all_signatures=True)
        audit_figures = {"backend_us_per_record_all_signatures": round(audit_cpu / total * 1e6, 1),
                         "ingest_vs_raw_pg_all_signatures": round(raw_s / audit_s, 3)}
    print("ingest phase: raw %.1f s, backend %.1f s, %s" % (raw_s, backend_s, audit_figures),
          file=sys.stderr, flush=True)
    return dict(audit_figures, **{"ingest_records": total, "ingest_messages": len(messages),
            "backend_records_per_s": round(total / backend_s, 1),
            "raw_pg_records_per_s": round(total / raw_s, 1),
            "ingest_vs_raw_pg": round(raw_s / backend_s, 3),
            "backend_us_per_record": round(cpu / total * 1e6, 1)})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--backlog", type=int, default=100)
    parser.add_argument("--steady-s", type=float, default=60)
    parser.add_argument("--ingest-terminals", type=int, default=2000)
    parser.add_argument("--ingest-backlog", type=int, default=None, help="default: --backlog")
    parser.add_argument("--ingest-only", action="store_true",
                        help="only the ingest phase (ingest_vs_raw_pg, backend_us_per_record)")
    parser.add_argument("--sim-processes", type=int, default=2,
                        help="simulator processes (daozhang sim --processes)")
    parser.add_argument("--status-interval-s", type=float, default=10,
                        help="the simulated terminals' status period (sim --status-interval)")
    parser.add_argument("--steady-only", action="store_true",
                        help="only the steady phase (lag_p99_s); no ingest, no storms")
    parser.add_argument("--storm-rounds", type=int, default=1,
                        help="storm pairs (1 and 2 workers), alternating their order; figures are means")
    parser.add_argument("--audit", action="store_true",
                        help="also ingest with --all-signatures: backend_us_per_record_all_signatures")
    args = parser.parse_args()

    from dztest.broker import Broker
    from daozhang.fleet.sim import raise_fd_limit
    from daozhang.host_tools.pki.bundle import make_test_pki

    raise_fd_limit(args.terminals + 2048)
    tmp = tempfile.mkdtemp(prefix="dzbench-fleet-")
    pki = make_test_pki(os.path.join(tmp, "pki"))
    out = {"terminals": args.terminals, "backlog": args.backlog, "loadavg_1m_start": os.getloadavg()[0],
           "status_interval_s": args.status_interval_s}
    if not args.steady_only:
        out.update(ingest_phase(pki, args.ingest_terminals, args.ingest_backlog or args.backlog,
                                args.audit))
    if args.ingest_only:
        out["loadavg_1m_end"] = os.getloadavg()[0]
        print(json.dumps(out, sort_keys=True))
        return
    # A broker per phase: a phase that ends undrained leaves queued messages
    # of its terminals' journals, which the next phase's terminals (same
    # device ids, new journals) would meet as forks.
    def phase(workers, rate, backlog, duration, timeout, hold):
        with Broker(pki=pki, persistence=False) as broker:
            return sim_phase(broker, workers, args.terminals, rate, backlog, duration, timeout,
                             args.sim_processes, hold, args.status_interval_s)

    steady = phase(2, 2, 0, args.steady_s, 300, False)
    if args.steady_only:
        out.update({k: steady[k] for k in ("lag_p50_s", "lag_p99_s", "records_acked_per_s", "drained",
                                           "all_connected_s", "sales", "records_acked",
                                           "messages_published", "cores_during_drain")})
        out["loadavg_1m_end"] = os.getloadavg()[0]
        print(json.dumps(out, sort_keys=True))
        return
    # Storm rounds alternate the order (1, 2 workers; then 2, 1; ...): the
    # other work on this shared machine drifts, and ABBA spreads its drift
    # over both worker counts instead of charging it to whichever ran last.
    storms = {1: [], 2: []}
    for r in range(args.storm_rounds):
        for workers in ((1, 2) if r % 2 == 0 else (2, 1)):
            storms[workers].append(phase(workers, 0, args.backlog, 0, 7200, True))

    def mean(workers, key):
        return round(sum(p[key] for p in storms[workers]) / len(storms[workers]), 2)
    everything = [steady] + storms[1] + storms[2]
    out.update({
        "sim_processes": args.sim_processes, "storm_rounds": args.storm_rounds,
        "lag_p50_s": steady["lag_p50_s"], "lag_p99_s": steady["lag_p99_s"],
        "steady_records_acked_per_s": steady["records_acked_per_s"],
        "steady_drained": steady["drained"], "steady_all_connected_s": steady["all_connected_s"],
        # the backlog's drain: from its release (every terminal online) to the last ack
        "storm_drain_s_1w": mean(1, "drain_s"), "storm_drain_s_2w": mean(2, "drain_s"),
        "storm_drain_runs_1w": [p["drain_s"] for p in storms[1]],
        "storm_drain_runs_2w": [p["drain_s"] for p in storms[2]],
        # the whole storm: from the first connect (N TLS handshakes) to the last ack
        "storm_total_s_1w": mean(1, "elapsed_s"), "storm_total_s_2w": mean(2, "elapsed_s"),
        "storm_connect_s": [p["released_s"] for p in storms[1] + storms[2]],
        "storm_records": storms[1][0]["records_acked"],
        "storm_drained": all(p["drained"] for p in storms[1] + storms[2]),
        "workers_2_vs_1": round(mean(1, "drain_s") / mean(2, "drain_s"), 3),
        "workers_2_vs_1_total": round(mean(1, "elapsed_s") / mean(2, "elapsed_s"), 3),
        "sim_10k_records_per_s": max(p["drain_records_per_s"] for p in storms[1] + storms[2]),
        "cores_during_drain_1w": [p.get("cores_during_drain") for p in storms[1]],
        "cores_during_drain_2w": [p.get("cores_during_drain") for p in storms[2]],
        "connect_failures": sum(p["connect_failures"] for p in everything),
    })
    out["loadavg_1m_end"] = os.getloadavg()[0]      # the machine is shared: figures move with it
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
