"""Who used the CPU during a fleet bench phase (bench/fleet.py).

A thread samples, once a second, the machine's busy time (/proc/stat) and
the CPU time of the processes the phase runs: the backend supervisor and
its worker processes, mosquitto, the simulator (this process and its
children), and every `postgres` process (the PostgreSQL server is shared
with other work on this machine, so its share is an upper bound for
this run's).  `window(t_from, t_to)` turns two samples into cores used:
CPU seconds over wall seconds, per group, and "other" for what the
machine spent outside these groups (other engineers' work).
"""

import os
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            head, tail = f.read().rsplit(")", 1)
    except OSError:
        return None
    fields = tail.split()
    comm = head.split("(", 1)[1]
    return comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK    # comm, ppid, cpu


def _machine_busy():
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]            # idle + iowait
    return (sum(values[:8]) - idle) / TICK


class CpuSampler:
    def __init__(self, supervisor_pid, broker_pid, interval=1.0):
        self.supervisor, self.broker = supervisor_pid, broker_pid
        self.me = os.getpid()
        self.interval = interval
        self.samples = []                   # (monotonic, {group: cpu seconds})
        self._stop = threading.Event()
        self._gone = {}                     # pid -> (group, last cpu): exited processes still count
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join(5)

    def _sample(self):
        groups = {"workers": 0.0, "supervisor": 0.0, "broker": 0.0, "postgres": 0.0, "sim": 0.0}
        seen = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            got = _stat(pid)
            if got is None:
                continue
            comm, ppid, cpu = got
            group = ("supervisor" if pid == self.supervisor else
                     "workers" if ppid == self.supervisor else
                     "broker" if pid == self.broker else
                     "sim" if pid == self.me or ppid == self.me else
                     "postgres" if comm == "postgres" else None)
            if group is not None:
                seen[pid] = (group, cpu)
        for pid, (group, cpu) in list(self._gone.items()):
            if pid not in seen:
                groups[group] += cpu        # a killed or finished process's last reading
        for pid, (group, cpu) in seen.items():
            groups[group] += cpu
            self._gone[pid] = (group, cpu)
        groups["machine"] = _machine_busy()
        return groups

    def _loop(self):
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self._sample()))
            self._stop.wait(self.interval)

    def _at(self, t):
        return min(self.samples, key=lambda s: abs(s[0] - t))

    def window(self, t_from, t_to):
        """{group: cores used} between the samples nearest t_from and t_to."""
        (a_t, a), (b_t, b) = self._at(t_from), self._at(t_to)
        wall = b_t - a_t
        if wall <= 0:
            return {}
        cores = {k: round((b[k] - a[k]) / wall, 2) for k in a}
        cores["other"] = round(cores["machine"] - sum(v for k, v in cores.items()
                                                      if k not in ("machine", "other")), 2)
        cores["wall_s"] = round(wall, 1)
        return cores
