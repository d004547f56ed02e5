"""A sync that cannot stall silently (SPEC 6.12): the sans-IO StallWatch,
and the real agent on the real broker with no backend acking it."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from daozhang.agent.core.sync.sync_stall import NO_ACK, READ_FAILED, StallWatch
from daozhang.client import Client

from dztest.agent_daemon import sale
from dztest.sync_world import wait_for

AFTER = 1000


def test_online_with_a_backlog_and_no_ack_for_the_limit_stalls_once():
    w = StallWatch(AFTER)
    assert w.observe(0, True, 5, 10) is None
    assert w.observe(999, True, 5, 10) is None
    verdict = w.observe(1000, True, 5, 10)
    assert verdict[0] == "stalled" and verdict[1] == NO_ACK and verdict[2]["since"] == 0
    assert w.observe(5000, True, 5, 12) is None            # raised once, not again
    assert w.state() == {"reason": NO_ACK, "since": 0, "why": None}
    assert w.observe(6000, True, 7, 12)[0] == "moving"     # acked moved: cleared
    assert w.state() is None


def test_the_last_problem_names_the_stall():
    w = StallWatch(AFTER)
    w.observe(0, True, 0, 3)
    w.observe(10, True, 0, 3, (READ_FAILED, "offset 262044: frame of 305 bytes runs past the end"))
    verdict = w.observe(2000, True, 0, 3)
    assert verdict[1] == READ_FAILED and "262044" in verdict[2]["detail"]


def test_offline_time_does_not_count_and_an_empty_backlog_is_no_stall():
    w = StallWatch(AFTER)
    w.observe(0, True, 0, 3)
    assert w.observe(500, False, 0, 3) is None
    assert w.observe(10000, True, 0, 3) is None            # the clock starts again here
    assert w.observe(10999, True, 0, 3) is None
    assert w.observe(11000, True, 0, 3)[0] == "stalled"
    idle = StallWatch(AFTER)
    assert all(idle.observe(t, True, 9, 9) is None for t in range(0, 10 ** 6, 999))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3000), st.booleans(), st.integers(0, 2), st.integers(0, 3)),
                max_size=60))
def test_stalled_only_after_the_limit_online_without_progress(steps):
    """Invariant: a "stalled" verdict comes only after stall_after_ms of
    online steps, backlog waiting, acked unchanged; "moving" only after a
    "stalled"; they alternate."""
    w = StallWatch(AFTER)
    now, acked, next_seq, last, start = 0, 0, 0, None, None
    prev_acked = None
    for dt, online, d_ack, d_next in steps:
        now += dt
        next_seq += d_next
        acked = min(next_seq, acked + d_ack)
        waiting = acked < next_seq
        progressed = prev_acked is not None and acked > prev_acked
        if progressed or not waiting or not online:
            start = None
        elif start is None:
            start = now
        verdict = w.observe(now, online, acked, next_seq)
        prev_acked = acked
        if verdict is not None:
            assert verdict[0] != last
            if verdict[0] == "stalled":
                assert online and waiting and start is not None and now - start >= AFTER
            last = verdict[0]


@pytest.mark.timeout(180)
def test_the_real_agent_raises_sync_stalled_when_no_backend_acks_and_clears_after(sqlite_world):
    world = sqlite_world
    config, sock, _ = world.provision_agent("pos-stall", stall_after_s=1, ack_timeout_s=1)
    world.start_agent(config)                    # the broker is up, no backend runs
    with Client(sock) as pos:
        pos.submit(sale("ST-1"))
    wait_for(lambda: (world.status(config).get("stalled") or {}).get("reason") == NO_ACK, 60,
             "sync-status.json says stalled")
    alerts_file = config.rsplit("/", 1)[0] + "/alerts.json"

    def alert_state():
        try:
            with open(alerts_file) as f:
                alerts = json.load(f)["alerts"]
        except (OSError, ValueError, KeyError):
            return None
        return next((a["state"] for a in alerts if a["kind"] == "sync_stalled"), None)

    wait_for(lambda: alert_state() == "firing", 30, "sync_stalled firing in alerts.json")
    out = world.cli("agent", "status", "--config", config)
    assert "stalled      no_ack" in out and "retrying" in out
    world.start_backend("b1")                    # a backend acks: the backlog moves
    wait_for(lambda: world.status(config).get("stalled") is None, 60, "stall cleared")
    wait_for(lambda: alert_state() in ("resolved", None), 30, "sync_stalled resolved")
    stored = world.store().alerts(device_id="pos-stall")
    assert any(a["kind"] == "sync_stalled" for a in stored), stored
