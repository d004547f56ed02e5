"""A damaged journal reaches the backend over MQTT (issue 9, SPEC 3.9, 6.2).

Invariant: a real agent process whose journal has a damaged committed
record comes up refusing sales with `journal_damaged`, and its degraded
MQTT link (agent/damaged_link.py) still delivers the `journal_damaged`
alert through the real TLS mosquitto to the real backend, which stores it
for that device (`daozhang backend alerts` lists it) - while the journal
stays byte for byte as it was.
"""

import os

import pytest

from daozhang.client import Client, Refused
from dztest.agent_daemon import sale
from dztest.sync_world import wait_for
from dztest.journal_damage import damage_a_committed_sale


@pytest.mark.timeout(240)
def test_damaged_journal_alert_reaches_the_backend_and_sales_stay_refused(sqlite_world):
    world = sqlite_world
    world.start_backend("b1")
    config, sock, _ = world.provision_agent("pos-dmg", journal_size="1MiB", segment_size="64KiB")
    agent = world.start_agent(config)
    with Client(sock) as pos:
        for i in range(3):
            pos.submit(sale("DMQ-%d" % i))
    store = world.store()
    wait_for(lambda: store.stats()["receipts"] >= 3, 60, "the sales reach the backend")
    assert not any(a["kind"] == "journal_damaged" for a in store.alerts(device_id="pos-dmg"))
    assert agent.terminate() == 0

    journal = os.path.join(os.path.dirname(config), "journal.dzj")
    damaged = damage_a_committed_sale(journal)
    agent.start()                                       # comes up on the damaged journal
    with Client(sock) as pos:
        with pytest.raises(Refused) as info:
            pos.submit(sale("DMQ-after"))
        assert info.value.code == "journal_damaged"

    def stored():
        return [a for a in store.alerts(device_id="pos-dmg") if a["kind"] == "journal_damaged"]

    wait_for(stored, 60, lambda: "journal_damaged in the backend; agent log: %s"
             % agent.log_tail(3000))
    alert = stored()[0]
    assert alert["state"] == "firing" and alert["severity"] == "critical", alert
    assert alert["payload"]["alert"]["detail"]["segment"] is not None, alert
    out = world.cli("backend", "alerts", "--device", "pos-dmg", "--db", world.db)
    assert "journal_damaged" in out and "critical" in out, out
    with Client(sock) as pos:                           # still refusing
        with pytest.raises(Refused) as info:
            pos.submit(sale("DMQ-later"))
        assert info.value.code == "journal_damaged"
    assert agent.terminate() == 0
    with open(journal, "rb") as f:
        assert f.read() == damaged                      # nothing written
