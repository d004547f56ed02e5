"""A restart whose saved ack anchor no longer matches the journal (SPEC
3.11, 6.6: a rollback or a truncation) is a security alert, and the daemon
still starts and serves: the alert raised while the sync link is being
built must reach the alerts topic, not crash the plugin."""

import os

import pytest

from daozhang.backend.ack import AckSigner
from daozhang.agent.ack_anchor import save_anchor
from daozhang.client import Client

from dztest.agent_daemon import sale
from dztest.sync_world import wait_for

pytestmark = pytest.mark.timeout(180)


def test_mismatched_anchor_at_start_alerts_and_serves(sqlite_world):
    world = sqlite_world
    world.start_backend("b1")
    config, sock, _ = world.provision_agent("pos-anchor")
    agent = world.start_agent(config)
    with Client(sock) as pos:
        last = max(pos.submit(sale("A-%02d" % i))["seq"] for i in range(5))
    store = world.store()
    wait_for(lambda: (store.head("pos-anchor") or (-1,))[0] >= last, 60, "sales stored")
    assert agent.terminate() == 0
    # A validly signed ack for records this journal never had.
    journal = os.path.join(os.path.dirname(config), "journal.dzj")
    backend = AckSigner.from_file(world.backend_key + ".key")
    save_anchor(journal, backend.receipts_ack("pos-anchor", last + 1000, bytes(32)))

    agent = world.start_agent(config)
    assert "sync_anchor_rejected" in agent.log_tail(20000)
    with Client(sock) as pos:
        assert pos.submit(sale("A-99"))["seq"] > last
    wait_for(lambda: any(a["kind"] == "security" for a in store.alerts(device_id="pos-anchor")),
             60, "the security alert at the backend")
    assert "Traceback" not in agent.log_tail(20000)
