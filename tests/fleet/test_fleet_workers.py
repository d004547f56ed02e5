"""2,000 simulated terminals through the test's own mosquitto (TLS, ACL) into
PostgreSQL with 2 backend workers; one worker is SIGKILLed mid-run and the
supervisor starts it again.

Invariant: every record the terminals saw acknowledged is stored exactly
once (count == distinct (device, seq), and the acks table covers what the
terminals hold), every terminal drained, and nothing was a finding.
"""

import os
import re
import signal

import pytest

from dztest.fleet_world import FleetWorld
from dztest.pg import postgres_url  # noqa: F401 (fixture)

pytestmark = [pytest.mark.mqtt, pytest.mark.postgres, pytest.mark.slow]

TERMINALS = 2000
STALL_S = 150           # no ack at all for this long: the pipeline is stuck, not slow
DRAIN_CAP_S = 3600      # a backstop for a run that trickles forever, not a performance limit


def test_two_thousand_terminals_two_workers_one_killed(tmp_path, tls_broker, postgres_url):
    from daozhang.fleet.sim import run_sim

    world = FleetWorld(tmp_path, tls_broker, postgres_url)
    try:
        world.start_backend(workers=2)
        victim = world.worker_pids()[0]
        killed = []

        def progress(snap):
            # Mid-run: sales flowing, the backlog storm under way.
            if not killed and snap["acked"] > 0 and snap["elapsed_s"] >= 8:
                os.kill(victim, signal.SIGKILL)
                killed.append(snap)
                print("SIGKILL worker 0 (pid %d) at %r" % (victim, snap))

        # No deadline on the drain: it waits as long as acks keep coming and
        # gives up only after STALL_S without one.  STALL_S is several times
        # what a healthy run can go without an ack: the messages lost with
        # the killed worker come again after the terminals' ack timeout
        # (30 s) plus a backoff, however loaded the machine is.
        settings = world.sim_settings(TERMINALS, rate=3, duration=15, backlog=2,
                                      drain_timeout=DRAIN_CAP_S, stall_timeout=STALL_S)
        report = run_sim(settings, progress)
        print(report)
        assert killed, "the run ended before the worker could be killed"
        assert world.worker_pids()[0] != victim, "the supervisor did not restart worker 0"
        assert re.search(r"event=worker_died code=-9 index=0 ", world.log())

        assert report["terminals"] == TERMINALS
        assert report["connects"] >= TERMINALS
        assert report["drained"], report
        assert report["sales_refused"] == 0
        assert report["acks_rejected"] == 0
        counts = world.db_counts()
        print(counts)
        assert counts["findings"] == []
        # Exactly once: no (device, seq) twice, and every acked record stored.
        assert counts["records"] == counts["distinct"]
        assert counts["acked_to"] == report["records_acked"]
        assert counts["records"] == report["records_acked"]
    finally:
        world.close()
