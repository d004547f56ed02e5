"""An agent SIGKILLed mid-sync at the shipped geometry (boards/generic-linux.toml:
64 MiB journal, 1 MiB segments, 4 KiB sectors) resumes from an ack that lies
more than 256 KiB into its segment, and the backend gets everything (issue 10:
the frame reader once failed there forever with "frame ... runs past the end").

Deterministic where test_sync_outages.py's chaos is not: sales go in one at a
time until the journal's head is past 320 KiB into its segment (a read-only
look at the file), and the backend acks all of them before the kills.
"""

import os

import pytest

from daozhang.agent.core.journal import record
from daozhang.agent.sync_status import _ReadOnlyJournal, journal_sync_view
from daozhang.client import Client

from dztest.agent_daemon import check_journal, sale
from dztest.sync_world import wait_for

pytestmark = pytest.mark.timeout(240)

KiB = 1024
DEVICE = "pos-deep"


def _head_offset(journal_path):
    """How far into its segment the journal's head is (bytes), read-only."""
    journal = _ReadOnlyJournal(journal_path)
    try:
        _, _, write_pos, head_index = journal.snapshot()
        return write_pos - journal.geo.segment_offset(head_index)
    finally:
        journal.close()


def test_sigkill_mid_sync_resumes_from_deep_in_a_1mib_segment(sqlite_world, tls_broker):
    world = sqlite_world
    world.start_backend("b1")
    config, sock, pub = world.provision_agent(DEVICE)        # the shipped 64 MiB / 1 MiB
    journal_path = os.path.join(os.path.dirname(config), "journal.dzj")
    store = world.store()
    agent = world.start_agent(config)

    sold = 0
    with Client(sock) as pos:           # one client, one sale at a time
        while _head_offset(journal_path) < 320 * KiB:
            assert sold < 2000, "the head never got past 320 KiB"
            last = max(pos.submit(sale("D-%04d" % i))["seq"] for i in range(sold, sold + 20))
            sold += 20
    wait_for(lambda: journal_sync_view(journal_path)["acked"] > last, 120, "the backend's ack")
    acked = journal_sync_view(journal_path)["acked"]

    # The broker dies, sales go on into the backlog, then the agent is SIGKILLed.
    tls_broker.kill()
    with Client(sock) as pos:
        last = max(pos.submit(sale("D-%04d" % i))["seq"] for i in range(sold, sold + 40))
    agent.kill()
    tls_broker.start()
    agent.start()
    with Client(sock) as pos:
        last = pos.submit(sale("D-after"))["seq"]
    wait_for(lambda: (store.head(DEVICE) or (-1,))[0] >= last, 120,
             "the backend to hold every record after the restart")
    assert agent.terminate() == 0

    journal = check_journal(journal_path, pub, os.path.join(os.path.dirname(config), "device.key"))
    offsets = {r.seq: r.offset for r in journal}
    assert offsets[acked] > 256 * KiB, "the resume point %d is only %d bytes into its segment" \
        % (acked, offsets[acked])
    rows = store.records(DEVICE)
    assert [r["seq"] for r in rows] == list(range(len(rows)))      # once each, in order
    by_seq = {r.seq: r for r in journal}
    assert all(by_seq[r["seq"]].hash == r["hash"] for r in rows if r["seq"] in by_seq)
    ids = [r["payload"]["pos_txn_id"] for r in rows if r["type"] == record.TYPE_TRANSACTION]
    assert sorted(ids) == sorted(["D-%04d" % i for i in range(sold + 40)] + ["D-after"])
    assert store.findings() == []
    log = agent.log_tail(200000)
    assert "sync_read_failed" not in log and "sync_anchor_rejected" not in log
    assert "event=sync_anchor_loaded" in log
