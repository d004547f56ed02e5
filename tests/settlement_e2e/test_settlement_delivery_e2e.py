"""Settlement acks reach an offline terminal whatever the broker loses
(issue 10, SPEC 7.8.7).  Real mosquitto with the shipped TLS/ACL config, a
real `backend run`, a real agent at the generic-linux board's journal
geometry (64 MiB, 1 MiB segments).

20,000 settlement rows for one terminal while it is offline; the broker is
SIGKILLed with acks queued for it (its in-memory queue is gone), and
another fleet certificate connects with the terminal's client id and a
clean start on the backend listener (any session left is wiped).  After the terminal reconnects it
has applied every row exactly once, and the backend holds none pending.
"""

import json
import os
import threading

import pytest

from daozhang.agent.core import cbor
from daozhang.backend.settlement_outbox import Outbox
from daozhang.client import Client
from dztest.agent_daemon import check_journal, sale
from dztest.settlement_e2e import csv_row, now_ms, rfc3339, settlement_records, write_csv
from dztest.sync_world import wait_for

pytestmark = pytest.mark.timeout(600)

ROWS = int(os.environ.get("DZ_SETTLE_E2E_ROWS", "20000"))
DEVICE = "pos-offline-1"


def submit_sales(sock, count, threads=8):
    when = rfc3339(now_ms() - 3600 * 1000)
    sales = [sale("O-%06d" % i, amount=10000, rrn="%012d" % (600000000000 + i),
                  auth_code="A%05d" % (i % 100000), time=when) for i in range(count)]
    seqs = {}

    def worker(k):
        with Client(sock, timeout=60) as pos:
            for txn in sales[k::threads]:
                seqs[txn["pos_txn_id"]] = pos.submit(txn)["seq"]

    pool = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(300)
    assert len(seqs) == count
    return sales, max(seqs.values())


@pytest.mark.volume
def test_20000_rows_for_an_offline_terminal_survive_a_broker_kill_and_a_client_id_takeover(
        sqlite_world, tmp_path):
    world = sqlite_world
    world.start_backend("b1", settlement_resend_s=5)
    config, sock, pub = world.provision_agent(DEVICE, journal_size="64MiB", segment_size="1MiB")
    agent = world.start_agent(config)
    sales, last = submit_sales(sock, ROWS)
    store = world.store()
    wait_for(lambda: (store.head(DEVICE) or (-1,))[0] >= last, 180, "every sale stored")
    assert agent.terminate() == 0                                   # the terminal goes offline

    settled_at = now_ms()
    csv_path = write_csv(str(tmp_path / "acq.csv"),
                         [csv_row("ACQ-%06d" % i, txn, settled_at=settled_at)
                          for i, txn in enumerate(sales)])
    report = world.cli("backend", "settle", csv_path, "--config", world.backend_config("b1"),
                       "--json")
    outbox = Outbox(store)
    assert outbox.counts(DEVICE) == {"queued": ROWS, "pending": ROWS, "confirmed": 0}, report

    # Acks queued for the offline terminal at the broker (the first window,
    # and the resender's timer): then the broker dies without saving them.
    wait_for(lambda: "settlements_sent" in world.backends[0].log(), 30, "acks sent to the broker")
    world.broker.kill()
    world.broker.start()
    # Another fleet certificate takes the terminal's client id, clean start:
    # whatever session the terminal had at the broker is wiped.  The shipped
    # terminals' listener no longer allows that (tests/broker/
    # test_client_id_binding.py); the backend listener still does, as a
    # misconfigured firewall would: a lost session must lose nothing anyway.
    hostile = world.broker.pki.add_device("pos-hostile")
    world.broker.connect(cert=hostile, client_id=DEVICE, clean_start=True,
                         port=world.broker.backend_port).close()

    agent = world.start_agent(config)
    wait_for(lambda: outbox.counts(DEVICE)["pending"] == 0, 240,
             "every ack confirmed by the terminal (pending: %s)" % outbox.counts(DEVICE))
    refs = [cbor.loads(r.payload["ack"])["row"]["acquirer_ref"] for r in settlement_records(config)]
    assert len(refs) == len(set(refs)) == ROWS, "each row applied exactly once"
    wait_for(lambda: world.status(config).get("settle_n") == ROWS, 30, "settle_n in sync-status")
    stats = json.loads(world.cli("backend", "stats", "--db", world.db, "--json"))
    assert stats["settlements_pending"] == 0
    assert json.loads(world.cli("agent", "status", "--config", config, "--json"))["settle_n"] == ROWS
    assert "reason=replay" not in agent.log_tail(10 ** 7)
    assert agent.terminate() == 0
    journal = os.path.join(os.path.dirname(config), "journal.dzj")
    check_journal(journal, pub, os.path.join(os.path.dirname(config), "device.key"))
