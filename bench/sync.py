"""MQTT sync benchmark: prints ONE JSON line (docs/SPEC.md §6, issue 4).

    python bench/sync.py            # everything, including the 1,000,000-record backlog
    python bench/sync.py --quick    # skips the 1M cases (their figures: null)

All in one run against one local mosquitto (the shipped TLS + ACL config):

- drain_100k_vs_raw_paho: records/s for a 100,000-record journal backlog
  published by the agent's sync, stored by a backend worker process in
  SQLite and acknowledged (the agent's acked cursor reaches the head),
  divided by records/s of raw paho publishing the same 100,000 frames one
  per QoS 1 message, nothing stored.
- e2e_p99_ms: POS submit (the real daemon's socket) to the row being in the
  backend's database, at 200 transactions/s; raw_fdatasync_p99_ms beside it.
- sync_path_rss_mib_100k_backlog / sync_path_rss_mib_1m_backlog: peak RSS
  (VmHWM) of the agent's sync path alone (journal + MQTT link, exactly the
  daemon's sync code, without intake and settlement) draining those backlogs.
- agent_rss_mib_100k_backlog / agent_rss_mib_1m_backlog (the issue's figure;
  1M null with --quick): the real `daozhang agent run` process (intake,
  settlement watchdog, alerts, sync) started on a 100,000- (1,000,000-)
  record backlog of unsettled sales, peak RSS (its /proc/PID/status VmHWM)
  until the backend has acknowledged the whole backlog.  The backlog is
  written straight into the journal, so this first start builds the
  on-disk indexes (intake ids, sale index) from the whole journal:
  daemon_start_s_* is that cold start; daemon_restart_s_* is the start
  after a clean stop (the indexes reused), and its VmHWM is
  agent_restart_rss_mib_*.  agent_rss_1m_vs_100k is the flatness ratio.

    python bench/sync.py --daemon-only [--quick]   # only the daemon figures
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

DEVICE = "pos-bench"


def build_backlog(path, count, key_path, device=DEVICE):
    """A journal holding `count` transaction records, committed 200 at a time."""
    from daozhang.agent.core.journal import record
    from daozhang.agent.journal_file import create_journal
    from daozhang.signing import load_signer
    from daozhang.agent.journal_file import JournalFile
    from dztest.sync import txn_payload

    size = max(8 << 20, int(count * 560 * 1.15))
    create_journal(path, device, size=size, segment_size=1 << 20)
    journal = JournalFile.open(path, load_signer(key_path))
    i = 0
    while i < count:
        n = min(200, count - i)
        journal.append_many([(record.TYPE_TRANSACTION, txn_payload(k)) for k in range(i, i + n)])
        i += n
    next_seq = journal.ring.next_seq
    journal.close()
    return next_seq


def peak_rss_mib():
    """VmHWM of this process (ru_maxrss would carry the parent's peak across exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def drain_child(args):
    """The agent side alone, as its own process: drain, then report."""
    from daozhang.agent.mqtt_link import MqttLink
    from daozhang.signing import load_public_key, load_signer, raw_public
    from daozhang.agent.journal_file import JournalFile

    journal = JournalFile.open(args.journal, load_signer(args.key), boot=False)
    mqtt = json.loads(args.mqtt)
    done = threading.Event()
    target = journal.ring.next_seq

    last_ack = [time.monotonic()]

    def log(event, level="info", **kw):
        if event == "sync_acked":
            last_ack[0] = time.monotonic()
            if kw.get("to", 0) >= target:
                done.set()

    link = MqttLink(journal, args.journal, journal.device_id, raw_public(load_public_key(args.backend_pub)),
                    mqtt, {"ack_timeout_ms": 30000, "max_batch_bytes": int(os.environ.get("DZ_BATCH", 65536))}, log=log)
    t0 = time.monotonic()
    link.start()
    while not done.wait(5) and time.monotonic() - last_ack[0] < 120:
        pass            # a stall of 2 minutes ends the run (ok: false)
    ok = done.is_set()
    elapsed = time.monotonic() - t0
    link.stop()
    journal.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"ok": ok, "records": target, "seconds": elapsed, "peak_rss_mib": peak_rss_mib(),
                      "cpu_seconds": ru.ru_utime + ru.ru_stime}))


def raw_paho(broker, count, window=20):
    """Raw paho: one 420-byte frame per QoS 1 message, at most `window` in
    flight (the broker's max_inflight_messages), nothing stored.  Bounded so
    paho's O(queue) inflight bookkeeping does not make the baseline slow."""
    payload = os.urandom(420)
    client = broker.client(DEVICE)
    client.max_inflight_messages_set(window)
    slots = threading.Semaphore(window)
    done = threading.Event()
    acked = [0]

    def on_publish(c, u, mid, rc, props):
        acked[0] += 1
        slots.release()
        if acked[0] >= count:
            done.set()

    connected = threading.Event()
    client.on_publish = on_publish
    client.on_connect = lambda c, u, f, rc, p: connected.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    connected.wait(10)
    from daozhang.mqtt_tls import set_nodelay
    set_nodelay(client)            # raw paho at its best: no Nagle delay either
    t0 = time.monotonic()
    for _ in range(count):
        slots.acquire()
        client.publish("daozhang/v1/%s/receipts" % DEVICE, payload, qos=1)
    done.wait(600)
    elapsed = time.monotonic() - t0
    client.loop_stop()
    client.disconnect()
    return count / elapsed


def run_drain(world, tmp, count, name):
    """Each drain is its own device (its own chain from seq 0, its own cert)."""
    from daozhang.signing import generate_keypair
    device = DEVICE + "-" + name
    key_prefix = os.path.join(tmp, name + "-device")
    generate_keypair(key_prefix)
    journal = os.path.join(tmp, name + ".dzj")
    t0 = time.monotonic()
    next_seq = build_backlog(journal, count, key_prefix + ".key", device)
    build_s = time.monotonic() - t0
    world.cli("backend", "device", "add", device, "--pubkey", key_prefix + ".pub", "--db", world.db)
    s = world.broker.settings(device)
    mqtt = {"host": s["host"], "port": s["port"], "ca": s["ca"], "cert": s["cert"], "key": s["key"]}
    backend_cpu0 = _proc_cpu(world.backends[0].proc.pid)
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "_drain", "--journal", journal,
                          "--key", key_prefix + ".key", "--backend-pub", world.backend_key + ".pub",
                          "--mqtt", json.dumps(mqtt)], capture_output=True, text=True, timeout=7200)
    if out.returncode != 0:
        raise RuntimeError("drain child failed: " + out.stderr[-3000:])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["build_seconds"] = build_s
    result["backend_cpu_seconds"] = _proc_cpu(world.backends[0].proc.pid) - backend_cpu0
    result["next_seq"] = next_seq
    os.unlink(journal)
    return result


def _proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _vm_hwm_mib(pid):
    """Peak RSS of process `pid` so far (the kernel's high-water mark)."""
    with open("/proc/%d/status" % pid) as f:
        return [int(line.split()[1]) / 1024.0 for line in f if line.startswith("VmHWM:")][0]


def run_daemon_drain(world, count=100000, name="daemon"):
    """The real daemon process (`daozhang agent run`: intake, settlement
    watchdog, alerts, sync) started on a `count`-record backlog of unsettled
    sales: its VmHWM once the backend has acknowledged all of it; then a
    clean stop and a second start on the same journal (indexes reused)."""
    from dztest.agent_daemon import AgentProcess
    from dztest.sync_world import wait_for
    device = DEVICE + "-" + name
    config, sock, pub = world.provision_agent(device, journal_size="80MiB", segment_size="1MiB",
                                              ack_timeout_s=30, status_interval_s=0.5)
    dev = os.path.dirname(config)
    os.unlink(os.path.join(dev, "journal.dzj"))
    n = build_backlog(os.path.join(dev, "journal.dzj"), count, os.path.join(dev, "device.key"), device)
    t0 = time.monotonic()
    agent = AgentProcess(config, config + ".log")
    world.agents.append(agent)
    agent.start(timeout=1800)           # the first start indexes the whole journal
    ready = time.monotonic() - t0
    wait_for(lambda: world.status(config).get("acked", 0) >= n, 1800, "daemon drain")
    drain = time.monotonic() - t0 - ready
    hwm = _vm_hwm_mib(agent.proc.pid)
    agent.terminate()
    t1 = time.monotonic()
    again = AgentProcess(config, config + ".2.log")
    world.agents.append(again)
    try:
        again.start(timeout=120)
        restart = time.monotonic() - t1
        threading.Event().wait(3)      # a few ticks: watchdog, sync status, heartbeats
        hwm2 = _vm_hwm_mib(again.proc.pid)
        again.terminate()
    except Exception as exc:           # the restart is a side figure: report, do not lose the run
        sys.stderr.write("restart failed: %s\n%s\n" % (exc, again.log_tail()))
        restart = hwm2 = None
    return {"peak_rss_mib": hwm, "ready_s": ready, "drain_s": drain,
            "restart_s": restart, "restart_rss_mib": hwm2}


def _daemon_figures(d100k, d1m):
    """The whole-daemon figures of both backlogs, side by side."""
    out = {}
    for label, d in (("100k", d100k), ("1m", d1m)):
        out["agent_rss_mib_%s_backlog" % label] = None if d is None else round(d["peak_rss_mib"], 1)
        out["daemon_start_s_%s_backlog" % label] = None if d is None else round(d["ready_s"], 1)
        out["daemon_drain_s_%s_backlog" % label] = None if d is None else round(d["drain_s"], 1)
        out["daemon_restart_s_%s_backlog" % label] = (
            None if d is None or d["restart_s"] is None else round(d["restart_s"], 2))
        out["agent_restart_rss_mib_%s_backlog" % label] = (
            None if d is None or d["restart_rss_mib"] is None else round(d["restart_rss_mib"], 1))
    out["agent_rss_1m_vs_100k"] = (None if d1m is None else
                                   round(d1m["peak_rss_mib"] / d100k["peak_rss_mib"], 2))
    return out


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def fdatasync_p99(directory, n=2000):
    path = os.path.join(directory, "fsync.probe")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    times = []
    try:
        for i in range(n):
            os.pwrite(fd, b"x" * 512, (i % 64) * 4096)
            t = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    return percentile(times, 99)


def run_e2e(world, rate=200, seconds=10):
    from daozhang.client import Client
    from dztest.agent_daemon import sale
    config, sock, pub = world.provision_agent("pos-e2e", journal_size="64MiB", segment_size="1MiB",
                                              ack_timeout_s=15, status_interval_s=1)
    world.start_agent(config)
    store = world.store()
    submitted = {}
    total = rate * seconds
    lock = threading.Lock()
    start = time.monotonic() + 0.2
    wall0 = time.time() * 1000 - time.monotonic() * 1000

    def worker(k, threads):
        with Client(sock) as pos:
            for i in range(k, total, threads):
                due = start + i / float(rate)
                delay = due - time.monotonic()
                if delay > 0:
                    threading.Event().wait(delay)
                t = time.monotonic()
                pos.submit(sale("E-%06d" % i))
                with lock:
                    submitted["E-%06d" % i] = wall0 + t * 1000

    threads = [threading.Thread(target=worker, args=(k, 8)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 120
    while len(store.receipts("pos-e2e")) < total and time.monotonic() < deadline:
        threading.Event().wait(0.2)
    rows = store.receipts("pos-e2e")
    lat = [r["received_at"] - submitted[r["payload"]["pos_txn_id"]] for r in rows
           if r["payload"]["pos_txn_id"] in submitted]
    return percentile(lat, 99), percentile(lat, 50), len(lat)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the 1,000,000-record backlog")
    parser.add_argument("--daemon-only", action="store_true",
                        help="only the whole-daemon RSS and start-up figures")
    parser.add_argument("mode", nargs="?", default="bench")
    parser.add_argument("--journal")
    parser.add_argument("--key")
    parser.add_argument("--backend-pub")
    parser.add_argument("--mqtt")
    args = parser.parse_args()
    if args.mode == "_drain":
        return drain_child(args)

    from dztest.broker import Broker
    from dztest.sync_world import SyncWorld
    from daozhang.host_tools.pki.bundle import make_test_pki

    tmp = tempfile.mkdtemp(prefix="dzbench-", dir=os.environ.get("DZ_BENCH_DIR", "/tmp"))
    try:
        pki = make_test_pki(os.path.join(tmp, "pki"),
                            devices=(DEVICE, DEVICE + "-d100k", DEVICE + "-d1m", DEVICE + "-daemon",
                                     DEVICE + "-daemon1m"))
        with Broker(pki=pki, persistence=False) as broker:
            world = SyncWorld(tmp, broker, os.path.join(tmp, "backend.db"))
            try:
                world.start_backend("b1")
                if args.daemon_only:
                    daemon = run_daemon_drain(world)
                    daemon1m = None if args.quick else run_daemon_drain(world, 1000000, "daemon1m")
                    print(json.dumps(_daemon_figures(daemon, daemon1m), sort_keys=True))
                    return
                fsync99 = fdatasync_p99(tmp)
                e2e99, e2e50, n_e2e = run_e2e(world)
                raw = raw_paho(broker, 100000)
                d100k = run_drain(world, tmp, 100000, "d100k")
                ours = d100k["records"] / d100k["seconds"]
                d1m = None if args.quick else run_drain(world, tmp, 1000000, "d1m")
                daemon = run_daemon_drain(world)
                daemon1m = None if args.quick else run_daemon_drain(world, 1000000, "daemon1m")
            finally:
                world.close()
        figures = _daemon_figures(daemon, daemon1m)
        figures.update({
            "drain_100k_vs_raw_paho": round(ours / raw, 2),
            "drain_100k_records_per_s": round(ours),
            "raw_paho_records_per_s": round(raw),
            "e2e_p99_ms": round(e2e99, 1), "e2e_p50_ms": round(e2e50, 1), "e2e_samples": n_e2e,
            "raw_fdatasync_p99_ms": round(fsync99, 2),
            "sync_path_rss_mib_100k_backlog": round(d100k["peak_rss_mib"], 1),
            "sync_path_rss_mib_1m_backlog": None if d1m is None else round(d1m["peak_rss_mib"], 1),
            "drain_100k_seconds": round(d100k["seconds"], 2),
            "drain_100k_agent_cpu_s": round(d100k["cpu_seconds"], 2),
            "drain_100k_backend_cpu_s": round(d100k["backend_cpu_seconds"], 2),
            "drain_1m_records_per_s": None if d1m is None else round(d1m["records"] / d1m["seconds"]),
        })
        print(json.dumps(figures, sort_keys=True))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
