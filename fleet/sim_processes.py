"""`daozhang sim --processes P`: the fleet split over P simulator processes.

One asyncio process (fleet/sim_run.py) spends most of a 10,000-terminal
reconnect storm on its own TLS handshakes and frame encoding, one core at
most; P processes (spawned, not forked: each builds its own slice of the
terminals, its journals and its MQTT pool) share that work over the
machine's cores.  Process i simulates devices first_i .. first_i + n_i - 1,
a contiguous slice, so device ids, certificates and merchants are those of
the one-process run.

The parent issues the certificates and registers the journal keys once,
then only coordinates:
- the gate: sales and a held backlog start when EVERY process has all its
  terminals online (each reports "online"; the parent then sets one
  multiprocessing Event and notes the instant as the release);
- progress: each process's latest snapshot, summed;
- the report: each process returns its counts, lags and instants
  (time.monotonic(), one clock for every process of the machine) and
  sim.finish_report sums them, the drain counted from the parent's release.
"""

import multiprocessing
import queue
import time

from daozhang.agent.core.errors import LocalError
from daozhang.fleet import sim_run as sim
from daozhang.fleet.identities import ensure_identities

PROGRESS_EVERY_S = 5.0
SNAPSHOT_KEYS = ("online", "sales", "acked", "backlog")


class SimProcessDied(LocalError):
    """A simulator process ended without its report."""


def slices(total, processes):
    """[(first, count)]: `total` terminals in `processes` contiguous slices."""
    base, extra = divmod(total, processes)
    out, first = [], 0
    for i in range(processes):
        count = base + (1 if i < extra else 0)
        out.append((first, count))
        first += count
    return [s for s in out if s[1] > 0]


class ProcessGate:
    """sim.LocalGate's role across processes: report this process online,
    open when the parent has released every process."""

    def __init__(self, index, events, release):
        self.index, self.events, self.release = index, events, release
        self.reported = False
        self.open_at = None

    def poll(self, now, started, all_online):
        if not self.reported and (all_online or now - started >= sim.CONNECT_WAIT_S):
            self.reported = True
            self.events.put(("online", self.index, now))
        if self.open_at is None and self.reported and self.release.is_set():
            self.open_at = now
        return self.open_at


def _child(index, settings_dict, events, release):
    import asyncio
    settings = sim.SimSettings(**dict(settings_dict, processes=1, register_db=None))
    sim.raise_fd_limit(settings.terminals + 512)
    backend_pub = sim.load_backend_pub(settings.backend_pub)
    t0 = time.monotonic()
    terminals, _ = sim.build_terminals(settings, backend_pub)
    built_s = time.monotonic() - t0
    last = [0.0]

    def progress(snap):
        if snap["elapsed_s"] - last[0] >= PROGRESS_EVERY_S:
            last[0] = snap["elapsed_s"]
            events.put(("progress", index, snap))
    pool, times = asyncio.run(sim._run(settings, terminals, progress,
                                       ProcessGate(index, events, release)))
    events.put(("report", index, sim.report_part(terminals, pool, times, 0, built_s)))


def run_processes(settings, progress=None):
    """run_sim over settings.processes processes; the summed report."""
    identities, issued = ensure_identities(settings.ca_dir, settings.cache, settings.terminals,
                                           settings.prefix)
    if settings.register_db:
        sim.register_devices(settings.register_db, identities)
    ctx = multiprocessing.get_context("spawn")
    events, release = ctx.Queue(), ctx.Event()
    procs = []
    for index, (first, count) in enumerate(slices(settings.terminals, settings.processes)):
        child = dict(settings.as_dict(), first=settings.first + first, terminals=count)
        proc = ctx.Process(target=_child, args=(index, child, events, release),
                           name="sim-%d" % index, daemon=True)
        proc.start()
        procs.append(proc)
    started = time.monotonic()
    online, snaps, parts, released = set(), {}, {}, None
    try:
        while len(parts) < len(procs):
            try:
                kind, index, value = events.get(timeout=1.0)
            except queue.Empty:
                for i, proc in enumerate(procs):
                    if i not in parts and proc.exitcode is not None:
                        raise SimProcessDied("simulator process %d exited (code %s) before its "
                                             "report: see its traceback above" % (i, proc.exitcode))
                continue
            if kind == "online":
                online.add(index)
                if len(online) == len(procs) and released is None:
                    released = time.monotonic()
                    release.set()
            elif kind == "progress":
                snaps[index] = value
                if progress is not None:
                    total = {k: sum(s[k] for s in snaps.values()) for k in SNAPSHOT_KEYS}
                    total["elapsed_s"] = round(time.monotonic() - started, 1)
                    progress(total)
            elif kind == "report":
                parts[index] = value
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.terminate()
    report = sim.finish_report(settings, [parts[i] for i in sorted(parts)], released)
    report["certificates_issued"] = issued
    return report
