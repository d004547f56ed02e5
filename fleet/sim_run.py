"""One simulator process's run: its terminals, its MQTT pool, its report part.

fleet/sim.py is the entry (`run_sim`); this module does the work of one
process, on its own (fleet/sim.py with processes=1) or as one of several
(fleet/sim_processes.py).

Each terminal (fleet/terminal.py) has its own certificate and journal key
(fleet/identities.py), journals real signed sales in memory and syncs them
with the agent's sync core over its own MQTT connection (fleet/mqtt_pool.py).
Sales start once every terminal has connected (at most CONNECT_WAIT_S), and
are spread evenly: `rate` per terminal per minute, the fleet's total taken
round-robin every 100 ms.  `backlog` records per terminal are
committed before the first connect (a reconnect storm after a regional
outage).  After `duration` seconds sales stop and the run waits (at most
`drain_timeout` s) until every terminal's journal is acknowledged.

The report (a dict, printed as JSON by the CLI): what was sold, published
and acknowledged, how many terminals drained, the lag from a sale's commit
to the backend's ack covering it (p50/p99), and when the backlog drained.
"""

import asyncio
import resource
import time

from daozhang.fleet.identities import ensure_identities
from daozhang.fleet.mqtt_pool import MqttPool
from daozhang.fleet.terminal import SimTerminal

TICK_S = 0.1
UPKEEP_SLICES = 10          # every link's timers and keepalive once a second
CONNECT_WAIT_S = 300


class SimSettings:
    __slots__ = ("terminals", "rate", "backlog", "duration", "host", "port", "ca", "ca_dir",
                 "cache", "prefix", "backend_pub", "register_db", "drain_timeout",
                 "connect_concurrency", "merchants", "sync", "stall_timeout", "hold_backlog",
                 "first", "processes", "status_interval_s")

    def __init__(self, terminals, rate, backlog=0, duration=60, host="127.0.0.1", port=8883,
                 ca=None, ca_dir=None, cache=None, prefix="sim", backend_pub=None,
                 register_db=None, drain_timeout=120, connect_concurrency=16, merchants=50,
                 sync=None, stall_timeout=None, hold_backlog=False, first=0, processes=1,
                 status_interval_s=10):
        for name, value in (("terminals", terminals), ("backlog", backlog), ("first", first)):
            if not isinstance(value, int) or value < 0:
                raise ValueError("%s: expected an integer >= 0, got %r" % (name, value))
        if rate < 0 or duration < 0:
            raise ValueError("rate and duration must be >= 0")
        if not isinstance(processes, int) or processes < 1:
            raise ValueError("processes: expected an integer >= 1, got %r" % (processes,))
        self.terminals, self.rate, self.backlog, self.duration = terminals, rate, backlog, duration
        self.host, self.port, self.ca, self.ca_dir = host, port, ca, ca_dir
        self.cache, self.prefix, self.backend_pub = cache, prefix, backend_pub
        self.register_db, self.drain_timeout = register_db, drain_timeout
        self.connect_concurrency, self.merchants = connect_concurrency, merchants
        self.sync = dict(sync or {})     # SyncCore settings, e.g. {"ack_timeout_ms": 15000}
        # Give up waiting for acks after stall_timeout s in which none came
        # (None: only drain_timeout, a wall limit, applies).
        self.stall_timeout = stall_timeout
        # Hold every backlog until all terminals are online, then release it
        # at once: the drain is then the backend's, not the connect storm's.
        self.hold_backlog = hold_backlog
        self.first = first               # this process simulates devices first .. first+terminals-1
        self.processes = processes       # run_sim splits the fleet over this many processes
        # A terminal's counters go up in its retained status at most this
        # often, when they changed (the fleet view's backlog column).  The
        # agent itself sends its status only on connect, alerts and
        # settlement progress, so this is extra load a real fleet lacks.
        self.status_interval_s = status_interval_s

    def as_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}


def raise_fd_limit(needed):
    """One socket per terminal: lift the soft limit to the hard one if needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def register_devices(db, identities):
    """Add each terminal's journal key to the backend's registry (idempotent)."""
    from daozhang.backend.store import open_store
    with open_store(db) as store:
        for ident in identities:
            store.add_device(ident.device_id, ident.public_bytes())


def build_terminals(settings, backend_pub, progress=None):
    """This process's terminals: devices settings.first .. first + terminals - 1."""
    identities, issued = ensure_identities(settings.ca_dir, settings.cache,
                                           settings.first + settings.terminals, settings.prefix,
                                           progress)
    identities = identities[settings.first:]
    if settings.register_db:
        register_devices(settings.register_db, identities)
    sales_room = int(settings.rate * (settings.duration + settings.drain_timeout) / 60) + 20
    terminals = [SimTerminal(ident, backend_pub, settings.backlog, sales_room,
                             merchant=merchant_id((settings.first + i) % max(1, settings.merchants)),
                             sync_settings=settings.sync, hold=settings.hold_backlog,
                             status_interval_ms=int(settings.status_interval_s * 1000))
                 for i, ident in enumerate(identities)]
    return terminals, issued


REGIONS = ("3100", "1100", "4401", "5101", "3301", "4403")


def merchant_id(n):
    """A 15-digit merchant number: acquirer 102, region (digits 4-7), MCC 5812, n."""
    return "102%s5812%04d" % (REGIONS[n % len(REGIONS)], n % 10000)


def _percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class LocalGate:
    """When sales (and a held backlog) start: once every terminal of this
    process is online, or CONNECT_WAIT_S after the start."""

    def __init__(self):
        self.open_at = None

    def poll(self, now, started, all_online):
        if self.open_at is None and (all_online or now - started >= CONNECT_WAIT_S):
            self.open_at = now
        return self.open_at


async def _run(settings, terminals, progress, gate):
    loop = asyncio.get_running_loop()
    pool = MqttPool(loop, (settings.host, settings.port), settings.ca,
                    connect_concurrency=settings.connect_concurrency)
    started = time.monotonic()
    for t in terminals:
        pool.add(t)
    per_s = settings.rate * len(terminals) / 60.0
    sold_target = 0.0
    cursor = 0
    tick = 0
    drained_at = None
    # Sales start once every terminal has connected (the gate): the lag then
    # measures the pipeline, not the connect storm.
    selling_from = None
    selling_until = started + CONNECT_WAIT_S + settings.duration
    give_up = selling_until + settings.drain_timeout
    acked_seen, progress_at = -1, started
    try:
        while True:
            await asyncio.sleep(TICK_S)   # the simulation's own clock tick, not a test wait
            now = time.monotonic()
            if selling_from is None:
                if pool.connected_s is None and pool.connects >= len(terminals):
                    pool.connected_s = now - started
                opened = gate.poll(now, started, pool.connects >= len(terminals))
                if opened is not None:
                    selling_from = opened
                    selling_until = now + settings.duration
                    give_up = selling_until + settings.drain_timeout
                    if settings.hold_backlog:
                        for t in terminals:
                            t.release()
                            pool.mark(pool.links[t.device_id])
            if selling_from is not None and now < selling_until and terminals and per_s > 0:
                sold_target += per_s * TICK_S
                now_ms = int(time.time() * 1000)
                while sold_target >= 1:
                    t = terminals[cursor % len(terminals)]
                    cursor += 1
                    sold_target -= 1
                    t.sell(now_ms)
                    pool.mark(pool.links[t.device_id])
            pool.tick(tick % UPKEEP_SLICES, UPKEEP_SLICES)
            tick += 1
            if progress is not None and tick % 50 == 0:
                progress(_snapshot(pool, terminals, now - started))
            if tick % UPKEEP_SLICES == 0:
                acked = sum(t.core.acked for t in terminals)
                if acked != acked_seen:
                    acked_seen, progress_at = acked, now
            if selling_from is not None and now >= selling_until:
                if all(t.drained for t in terminals):
                    drained_at = now
                    break
                if now >= give_up or (settings.stall_timeout is not None
                                      and now - progress_at >= settings.stall_timeout):
                    break
    finally:
        pool.close()
        await asyncio.sleep(0.2)    # let the DISCONNECTs go out before the loop closes
    times = {"started": started, "released": selling_from, "drained": drained_at,
             "ended": drained_at or time.monotonic()}
    return pool, times


def _snapshot(pool, terminals, elapsed):
    return {"elapsed_s": round(elapsed, 1), "online": sum(1 for l in pool.links.values() if l.online),
            "sales": sum(t.sales for t in terminals),
            "acked": sum(t.records_acked for t in terminals),
            "backlog": sum(t.backlog for t in terminals)}


def load_backend_pub(path):
    from daozhang.signing import load_public_key, raw_public
    with open(path, "rb") as f:
        return raw_public(load_public_key(f.read()))


def run_one(settings, progress=None):
    """Build this process's terminals, run them, and return the report."""
    raise_fd_limit(settings.terminals + 512)
    backend_pub = load_backend_pub(settings.backend_pub)
    t0 = time.monotonic()
    terminals, issued = build_terminals(settings, backend_pub, progress=None)
    built_s = time.monotonic() - t0
    pool, times = asyncio.run(_run(settings, terminals, progress, LocalGate()))
    return finish_report(settings, report_part(terminals, pool, times, issued, built_s))


def report_part(terminals, pool, times, issued, built_s):
    """One process's counts, lags and instants (time.monotonic(), the same
    clock in every process of this machine): summed by finish_report."""
    return {
        "terminals": len(terminals), "certificates_issued": issued, "build_s": built_s,
        "times": times, "connected_s": pool.connected_s,
        "terminals_drained": sum(1 for t in terminals if t.drained),
        "sales": sum(t.sales for t in terminals),
        "sales_refused": sum(t.sales_refused for t in terminals),
        "messages_published": pool.published,
        "records_acked": sum(t.records_acked for t in terminals),
        "backlog_left": sum(t.backlog for t in terminals),
        "connects": pool.connects, "connect_failures": pool.connect_failures,
        "acks_rejected": sum(t.rejects for t in terminals),
        "lags_ms": [lag for t in terminals for lag in t.lags_ms],
    }


SUMMED = ("terminals", "certificates_issued", "terminals_drained", "sales", "sales_refused",
          "messages_published", "records_acked", "backlog_left", "connects", "connect_failures",
          "acks_rejected")


def finish_report(settings, parts, released=None):
    """The report of one or more processes' parts (report_part).

    elapsed_s runs from the first process's start (its first connect) to
    the last terminal drained; drain_s from the release of the held backlog
    (hold_backlog) or the start of sales to the last terminal drained."""
    if isinstance(parts, dict):
        parts = [parts]
    out = {key: sum(p[key] for p in parts) for key in SUMMED}
    started = min(p["times"]["started"] for p in parts)
    drained = all(p["times"]["drained"] is not None for p in parts)
    ended = max(p["times"]["ended"] for p in parts)
    if released is None:
        opened = [p["times"]["released"] for p in parts if p["times"]["released"] is not None]
        released = max(opened) if opened else None
    elapsed = ended - started
    lags = [lag for p in parts for lag in p["lags_ms"]]
    connected = [p["connected_s"] for p in parts]
    out.update({
        "rate_per_min": settings.rate, "backlog": settings.backlog, "duration_s": settings.duration,
        "processes": len(parts), "hold_backlog": settings.hold_backlog,
        "build_s": round(max(p["build_s"] for p in parts), 2),
        "elapsed_s": round(elapsed, 2), "drained": drained,
        "records_acked_per_s": round(out["records_acked"] / elapsed, 1) if elapsed > 0 else None,
        "all_connected_s": None if None in connected else round(max(connected), 2),
        "released_s": None if released is None else round(released - started, 2),
        "drain_s": None if released is None else round(ended - released, 2),
        "lag_p50_s": _seconds(_percentile(lags, 0.5)), "lag_p99_s": _seconds(_percentile(lags, 0.99)),
        # the same instants on time.monotonic(), for a caller that samples beside the run
        "monotonic": {"started": started, "released": released, "ended": ended},
    })
    if released is not None and ended > released:
        out["drain_records_per_s"] = round(out["records_acked"] / (ended - released), 1)
    return out


def _seconds(ms):
    return None if ms is None else round(ms / 1000.0, 3)
