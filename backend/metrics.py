"""Prometheus metrics of the backend workers (prometheus_client).

Every worker process counts what its Ingestor did (messages, records
stored, acks sent, findings) and how long each message waited between the
broker delivering it and its commit + PUBACK (`ingest lag`).  Workers are
separate processes, so prometheus_client's multiprocess mode is used: each
worker writes its samples to files under PROMETHEUS_MULTIPROC_DIR, and the
supervisor's HTTP endpoint (`daozhang backend run --http`, path /metrics)
adds them up; the `worker` label keeps the per-worker rate visible.

    daozhang_messages_ingested_total{worker="0"}    receipts/alerts/status messages
    daozhang_records_stored_total{worker="0"}       new records committed
    daozhang_acks_sent_total{worker="0"}            signed acks published
    daozhang_findings_total{worker="0"}             verification findings
    daozhang_ingest_lag_seconds (histogram)         delivery -> committed and acked
    daozhang_workers_alive                          worker processes running (supervisor)

Counting is a thread in the worker reading Ingestor.counts once a second
(deltas), so the hot path pays nothing but the lag observation per group.
"""

import os
import threading
import time

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_COUNTS = (("messages", "daozhang_messages_ingested_total", "Messages from devices handled"),
           ("records", "daozhang_records_stored_total", "New journal records committed"),
           ("acks", "daozhang_acks_sent_total", "Signed receipts acks published"),
           ("findings", "daozhang_findings_total", "Verification findings recorded"),
           ("replayed", "daozhang_receipts_replayed_total",
            "Receipts messages below the device's acked cursor (broker redelivery or replay)"))


class WorkerMetrics:
    """Installed in a worker process: backend.service.OBSERVERS calls it."""

    def __init__(self, worker_label, interval_s=1.0):
        from prometheus_client import Counter, Histogram
        self.label = str(worker_label)
        self.counters = {key: Counter(name[:-len("_total")], text, ["worker"]).labels(self.label)
                         for key, name, text in _COUNTS}
        self.lag = Histogram("daozhang_ingest_lag_seconds", "Broker delivery to commit and ack",
                             buckets=LAG_BUCKETS)
        self.interval_s = interval_s
        self.ingestor = None
        self._seen = {key: 0 for key, _, _ in _COUNTS}
        self._stop = threading.Event()

    def __call__(self, event, *args):
        if event == "worker":
            self.ingestor = args[0]
            threading.Thread(target=self._sample_loop, name="metrics", daemon=True).start()
        elif event == "group":
            now = time.monotonic()
            for message in args[0]:
                stamp = getattr(message, "timestamp", None)
                if stamp:
                    self.lag.observe(max(0.0, now - stamp))

    def sample(self):
        counts = self.ingestor.counts if self.ingestor is not None else {}
        for key, counter in self.counters.items():
            value = counts.get(key, 0)
            if value > self._seen[key]:
                counter.inc(value - self._seen[key])
                self._seen[key] = value

    def _sample_loop(self):
        while not self._stop.wait(self.interval_s):
            self.sample()


def install_worker_metrics(worker_label):
    """In a worker started by the supervisor (PROMETHEUS_MULTIPROC_DIR set)."""
    if not os.environ.get(MULTIPROC_ENV):
        return None
    from daozhang.backend import service
    metrics = WorkerMetrics(worker_label)
    service.OBSERVERS.append(metrics)
    return metrics


def exposition(workers_alive=None):
    """(body, content type) of /metrics: every worker's samples, added up,
    and the supervisor's own count of live workers."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
    from prometheus_client import multiprocess
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    body = generate_latest(registry)
    if workers_alive is not None:
        own = CollectorRegistry()
        Gauge("daozhang_workers_alive", "Worker processes running", registry=own).set(workers_alive)
        body += generate_latest(own)
    return body, CONTENT_TYPE_LATEST


def mark_dead(pid):
    """A worker exited: its live gauges go (its counters stay counted)."""
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(pid)
