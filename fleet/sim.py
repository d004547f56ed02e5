"""`daozhang sim`: N simulated terminals against the real broker and backend.

    report = run_sim(SimSettings(terminals=2000, rate=2, backlog=100, duration=30,
                                 host="127.0.0.1", port=8883, ca_dir="pki/ca",
                                 cache="fleet-cache", backend_pub="backend.pub",
                                 processes=2, hold_backlog=True))

One process (fleet/sim_run.py: asyncio, one MQTT connection per terminal)
or, with settings.processes > 1, the fleet split over that many processes
(fleet/sim_processes.py), their reports summed.  The report's keys:
fleet/sim_run.py finish_report.
"""

from daozhang.fleet.sim_processes import run_processes
from daozhang.fleet.sim_run import (SimSettings, raise_fd_limit, register_devices,  # noqa: F401
                                    run_one)


def run_sim(settings, progress=None):
    """Build the fleet, run it, and return the report (a dict)."""
    if settings.processes > 1:
        return run_processes(settings, progress)
    return run_one(settings, progress)
