"""The real agent's retained status carries its sync counters (SPEC 6.2), the
numbers the fleet view shows per terminal; with or without the settlement
plugin's alert summary beside them."""

from daozhang.agent.core import cbor
from daozhang.agent.core.journal import record
from daozhang.agent.mqtt_link import MqttLink
from dztest.sync import DEVICE, make_journal, signer, txn_payload


def _status(link):
    return cbor.loads(link.agent.status_payload(0))


def test_status_carries_the_sync_counters(tmp_path):
    path, journal = make_journal(tmp_path)
    journal.append_many([(record.TYPE_TRANSACTION, txn_payload(i)) for i in range(5)])
    link = MqttLink(journal, path, DEVICE, signer(9).public_bytes, {})
    status = _status(link)
    assert status["state"] == "online" and status["dev"] == DEVICE
    assert status["c"] == {"acked": 0, "backlog": journal.ring.next_seq, "published": 0,
                           "rejected": 0, "reconnects": 0}
    journal.close()
    (tmp_path / "extra").mkdir()
    path, journal = make_journal(tmp_path / "extra")
    journal.append_many([(record.TYPE_TRANSACTION, txn_payload(i)) for i in range(5)])
    link = MqttLink(journal, path, DEVICE, signer(9).public_bytes, {},
                    status_extra=lambda: {"alerts": {"firing": 1}})
    status = _status(link)
    assert status["alerts"] == {"firing": 1} and status["c"]["backlog"] == journal.ring.next_seq
    journal.close()
