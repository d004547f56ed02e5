"""10,000 transactions through a real daemon, a real TLS+ACL mosquitto and a
real backend worker, while the broker is SIGKILLed and restarted 3 times
and the agent SIGKILLed twice (SPEC 6).

Afterwards the backend holds every committed record exactly once, in
order, chained (the store refuses to count past a break), identical to the
journal; and no record was ever released before its ack: every cursor the
journal's checkpoints carry is an ack the backend actually sent.
"""

import os
import threading

import pytest

from daozhang.agent.core.journal import record
from daozhang.client import AgentUnavailable, Client

from dztest.agent_daemon import check_journal, sale
from dztest.broker import Broker
from dztest.pg import fresh_database
from dztest.sync_world import SyncWorld, wait_for

pytestmark = pytest.mark.timeout(400)

TOTAL = 10000
THREADS = 4


class Submitter:
    """POS threads: each submits its share, retrying through agent restarts."""

    def __init__(self, sock, total, threads, when=None):
        self.sock = sock
        self.when = when
        self.total = total
        self.threads = threads
        self.done = {}
        self.lock = threading.Lock()
        self.progress = threading.Condition(self.lock)
        self.errors = []

    def run_one(self, k):
        client = None
        retry = threading.Event()
        for i in range(k, self.total, self.threads):
            txn = sale("T-%06d" % i, amount=100 + i)
            if self.when is not None:
                txn["time"] = self.when
            while True:
                try:
                    if client is None:
                        client = Client(self.sock, timeout=30).connect()
                    receipt = client.submit(txn)
                    break
                except (AgentUnavailable, OSError):
                    if client is not None:
                        client.close()
                    client = None
                    retry.wait(0.05)      # the agent is restarting
                except Exception as exc:   # a refusal would be a test failure
                    self.errors.append(repr(exc))
                    return
            with self.progress:
                self.done[txn["pos_txn_id"]] = receipt["seq"]
                self.progress.notify_all()
        if client is not None:
            client.close()

    def wait_count(self, n, timeout=120):
        with self.progress:
            ok = self.progress.wait_for(lambda: len(self.done) >= n or self.errors, timeout)
        assert ok and not self.errors, self.errors[:3]


def _committed_acked(journal_path):
    """The acked cursor of the journal's last commit, read-only (the agent runs)."""
    from daozhang.agent.sync_status import _ReadOnlyJournal
    journal = _ReadOnlyJournal(journal_path)
    try:
        return journal.ring.acked
    finally:
        journal.close()


def agent_log(config):
    with open(config + ".log") as f:
        return f.read()


# Chaos at fixed fractions of progress (not of time).
CHAOS = ((0.15, "broker"), (0.30, "agent"), (0.45, "broker"), (0.65, "agent"), (0.80, "broker"))


# 64 MiB (the shipped size): nothing is settled here, so every sale stays; format 2 pads
# each commit to a 4 KiB sector, and on a slow run most commits carry one sale
# (10,000 x 4 KiB = 40 MB, under the 80% near-full line).
def run_scenario(tmp_path, pki, db, total=TOTAL, journal_size="64MiB", segment_size="256KiB",
                 when=None):
    with Broker(pki=pki) as broker:
        world = SyncWorld(tmp_path, broker, db)
        try:
            backend = world.start_backend("b1")
            config, sock, pub = world.provision_agent("pos-chaos", journal_size=journal_size,
                                                      segment_size=segment_size)
            agent = world.start_agent(config)
            pos = Submitter(sock, total, THREADS, when)
            threads = [threading.Thread(target=pos.run_one, args=(k,), daemon=True)
                       for k in range(THREADS)]
            for t in threads:
                t.start()
            # chaos at fixed points of progress (not of time)
            for fraction, what in CHAOS:
                n = int(total * fraction)
                pos.wait_count(n)
                online = agent_log(config).count("event=sync_online")
                if what == "broker":
                    broker.kill()
                    pos.wait_count(n + total // 30)   # journaling goes on while offline
                    broker.start()
                else:
                    agent.kill()
                    agent.start()
                # The next event hits a link that is up again (each event is then
                # a real reconnect, whatever the machine's load).
                wait_for(lambda: agent_log(config).count("event=sync_online") > online, 120,
                         "sync online again after the %s kill" % what)
            for t in threads:
                t.join(180)
            assert not pos.errors, pos.errors[:3]
            assert len(pos.done) == total

            store = world.store()
            last_txn_seq = max(pos.done.values())
            wait_for(lambda: (store.head("pos-chaos") or (-1,))[0] >= last_txn_seq + 1, 120,
                     "backend to hold every committed transaction")
            # Acks ride on the next commit (noted cursors): when the last sales shared
            # few commits, that is the idle heartbeat's (heartbeat_s), not a sale's.
            journal_path = os.path.join(os.path.dirname(config), "journal.dzj")
            wait_for(lambda: _committed_acked(journal_path) > last_txn_seq, 120,
                     "a commit carrying the backend's last ack")
            agent.terminate()

            rows = store.records("pos-chaos")
            seqs = [r["seq"] for r in rows]
            assert seqs == list(range(len(seqs)))              # once each, in order, no gap
            receipts = [r for r in rows if r["type"] == record.TYPE_TRANSACTION]
            ids = [r["payload"]["pos_txn_id"] for r in receipts]
            assert len(ids) == len(set(ids)) == total
            assert {r["payload"]["pos_txn_id"]: r["seq"] for r in receipts} == pos.done
            assert store.findings() == []

            journal = check_journal(journal_path, pub, os.path.join(os.path.dirname(config), "device.key"))
            by_seq = {r.seq: r for r in journal}
            for row in rows:
                if row["seq"] in by_seq:
                    assert by_seq[row["seq"]].hash == row["hash"]
            sent = set(backend.acks_sent()) | {0}
            cursors = [r.payload["acked"] for r in journal if r.type == record.TYPE_CHECKPOINT]
            assert max(cursors) > total              # cursors really moved with acks
            log = agent_log(config)
            assert log.count("event=sync_online") >= 6  # 1 + 3 broker + 2 agent restarts
            assert "event=sync_anchor_loaded" in log  # cursors came back from the anchor
            for rec in journal:
                if rec.type == record.TYPE_CHECKPOINT:
                    p = rec.payload
                    assert p["released"] <= p["acked"]
                    assert p["acked"] in sent, "checkpoint %d: acked %d was never sent by the backend" \
                        % (rec.seq, p["acked"])
            # No alert but those the kills explain (a backlog while the broker
            # was down; the anchor check after an agent kill must not cry wolf).
            kinds = {a["kind"] for a in store.alerts(device_id="pos-chaos")}
            assert kinds <= {"sync_backlog"}, kinds
            assert "sync_anchor_rejected" not in log and "sync_read_failed" not in log
            return rows
        finally:
            world.close()


@pytest.mark.volume
def test_10k_transactions_through_broker_and_agent_kills_sqlite(tmp_path, fleet_pki):
    run_scenario(tmp_path, fleet_pki, str(tmp_path / "backend.db"))


def test_3000_sales_at_the_shipped_geometry_through_broker_and_agent_kills(tmp_path, fleet_pki):
    """boards/generic-linux.toml's journal: 64 MiB in 1 MiB segments, where
    a restart resends from deep inside a segment (issue 10)."""
    from dztest.settlement_e2e import now_ms, rfc3339
    run_scenario(tmp_path, fleet_pki, str(tmp_path / "backend.db"), total=3000,
                 journal_size="64MiB", segment_size="1MiB", when=rfc3339(now_ms() - 3600 * 1000))


@pytest.mark.volume
def test_10k_transactions_through_broker_and_agent_kills_postgres(tmp_path, fleet_pki):
    with fresh_database() as url:
        run_scenario(tmp_path, fleet_pki, url)
