"""The backend's MQTT session (SPEC 6.10.4): a stable client id per worker,
clean_start false and a session expiry, so what the group hands a worker
while it is down waits at the broker instead of reaching no subscriber.
(The config side: tests/sync/test_share_group_and_puback.py.)"""

import re

import pytest

from daozhang.client import Client

from dztest.agent_daemon import sale
from dztest.sync_world import wait_for


@pytest.mark.timeout(180)
def test_receipts_published_while_the_worker_is_down_wait_for_its_session(sqlite_world):
    """The agent's ack timeout is far longer than the test may wait: the
    receipts can only arrive through the worker's persistent session."""
    world = sqlite_world
    backend = world.start_backend("b1")
    log = world.broker.log()
    connected = re.findall(r"New client connected from \S+ as (backend-\S+-1) \(p5, c(\d)", log)
    assert connected and connected[-1][1] == "0", log[-2000:]   # c0: clean_start false
    config, sock, _ = world.provision_agent("pos-session", ack_timeout_s=3600)
    world.start_agent(config)
    store = world.store()
    with Client(sock) as pos:
        first = pos.submit(sale("S-00"))["seq"]
    wait_for(lambda: (store.head("pos-session") or (-1,))[0] >= first, 60, "first sale stored")
    backend.kill()
    with Client(sock) as pos:
        last = max(pos.submit(sale("S-%02d" % i))["seq"] for i in range(1, 6))
    world.start_backend("b1")
    wait_for(lambda: (store.head("pos-session") or (-1,))[0] >= last, 60,
             "sales queued in the worker's session stored (ack timeout is %ds)" % 3600)
