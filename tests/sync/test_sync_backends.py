"""Backend workers on the shared subscription, and a long outage (SPEC 6.6, 6.7).

- Two backend processes (PostgreSQL) split the load; one is SIGKILLed
  mid-stream: no record lost, none stored twice, nothing reported as a
  finding (out-of-order batches between workers are normal).
- A long broker outage fills a small journal past the near-full threshold
  (alert), then to JournalFull (the POS is refused); once the broker is
  back the backlog drains, and sales are taken again.
"""

import threading

import pytest

from daozhang.agent.sim_clock import write_clock_file
from daozhang.client import Client, Refused

from dztest.agent_daemon import sale
from dztest.pg import fresh_database
from dztest.settlement_e2e import now_ms, rfc3339
from dztest.sync_world import SyncWorld, wait_for

pytestmark = pytest.mark.timeout(300)


@pytest.mark.volume
def test_two_backends_one_killed_mid_stream(tmp_path, tls_broker):
    total = 3000
    with fresh_database() as url:
        world = SyncWorld(tmp_path, tls_broker, url)
        try:
            b1 = world.start_backend("b1")
            b2 = world.start_backend("b2")
            config, sock, pub = world.provision_agent("pos-shared", journal_size="16MiB",
                                                      segment_size="256KiB")
            world.start_agent(config)
            store = world.store()
            done = {}
            lock = threading.Lock()

            def submit(k):
                with Client(sock) as pos:
                    for i in range(k, total, 2):
                        r = pos.submit(sale("S-%05d" % i))
                        with lock:
                            done[r["pos_txn_id"] if "pos_txn_id" in r else "S-%05d" % i] = r["seq"]

            threads = [threading.Thread(target=submit, args=(k,), daemon=True) for k in range(2)]
            for t in threads:
                t.start()
            wait_for(lambda: "ack_sent" in b1.log() and "ack_sent" in b2.log(), 60,
                     "both workers acknowledging")
            wait_for(lambda: store.stats()["receipts"] >= total // 3, 60, "a third stored")
            b1.kill()                                    # SIGKILL, mid-stream
            for t in threads:
                t.join(120)
            assert len(done) == total
            last = max(done.values())
            wait_for(lambda: (store.head("pos-shared") or (-1,))[0] > last, 90, "all stored")
            rows = store.records("pos-shared")
            assert [r["seq"] for r in rows] == list(range(len(rows)))
            ids = [r["payload"]["pos_txn_id"] for r in rows if r["type"] == 1]
            assert len(ids) == len(set(ids)) == total
            assert store.findings() == []
            with store.db.read() as tx:
                n, distinct = tx.one("SELECT COUNT(*), COUNT(DISTINCT seq) FROM records "
                                     "WHERE device_id = %s", ("pos-shared",))
            assert n == distinct == len(rows)
        finally:
            world.close()


def test_long_outage_near_full_then_full_then_drains(tmp_path, tls_broker):
    world = SyncWorld(tmp_path, tls_broker, str(tmp_path / "backend.db"))
    try:
        world.start_backend("b1")
        config, sock, pub = world.provision_agent("pos-full", journal_size="260KiB",
                                                  segment_size="16KiB", near_full=0.7)
        clock = str(tmp_path / "clock.json")
        write_clock_file(clock, 0)
        agent = world.start_agent(config, env={"DAOZHANG_SIM_CLOCK": clock})
        with Client(sock) as pos:
            for i in range(5):
                pos.submit(sale("F-%d" % i))
        wait_for(lambda: world.status(config).get("backlog", 1) == 0, 30, "first sync")
        tls_broker.kill()                                    # the long outage
        refused = None
        n = 5
        with Client(sock) as pos:
            while refused is None:
                try:
                    pos.submit(sale("F-%d" % n))
                    n += 1
                except Refused as exc:
                    refused = exc
                assert n < 5000, "journal never filled"
        assert refused.code == "journal_full"
        with open(config + ".log") as f:
            log = f.read()
        assert "event=journal_near_full" in log
        assert log.index("event=journal_near_full") < log.index("event=journal_full")
        tls_broker.start()
        store = world.store()
        wait_for(lambda: len(store.receipts("pos-full")) == n, 60, "backlog drained")
        wait_for(lambda: world.status(config).get("backlog", 1) == 0, 30, "all acknowledged")
        # Acknowledged is not yet releasable: the settlement watchdog keeps a
        # sale until it settles or expires.  Move the agent's clock past the
        # expiry (no settlement file in this test): the sales expire, the
        # floor moves, space is reclaimed.
        with Client(sock) as pos:
            with pytest.raises(Refused):
                pos.submit(sale("F-early"))
        moved = 40 * 86400 * 1000
        write_clock_file(clock, moved)
        # A sale of the terminal's (moved) day: the intake refuses POS times
        # more than 30 days from its clock (time_out_of_range).
        after = sale("F-after", time=rfc3339(now_ms() + moved - 3600 * 1000))

        def resumed():
            try:
                with Client(sock) as pos:
                    return pos.submit(after)
            except Refused as exc:
                assert exc.code == "journal_full"
                return None
        receipt = wait_for(resumed, 30, "intake resumes")
        assert receipt["seq"] > 0
        kinds = {a["kind"] for a in store.alerts("pos-full")}
        wait_for(lambda: {"journal_near_full", "journal_full"} <= {a["kind"] for a in store.alerts("pos-full")},
                 30, "alerts delivered after the outage")
        assert agent.proc.poll() is None
        assert kinds is not None
    finally:
        world.close()
