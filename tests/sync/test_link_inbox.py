"""The link's inbox of alert transitions is bounded by how many it holds,
not by how many calls made it (docs/DESIGN.md "The daemon's memory").

Invariant: however many transitions the settlement thread publishes while
the link thread is busy, the inbox holds at most INBOX_ALERTS of them plus
one per kind; what gives way is the oldest, except each dropped list's
latest transition per kind (the link's record of what is active); the
order of what is kept is the order of publishing.
"""

from daozhang.agent import mqtt_link
from daozhang.agent.mqtt_link import MqttLink
from dztest.sync import DEVICE, make_journal, signer


def _transitions(start, n, kind="settlement_overdue"):
    return [{"kind": kind, "key": "S-%d" % i, "action": "firing", "state": "firing"}
            for i in range(start, start + n)]


def test_a_flood_keeps_the_newest_and_the_latest_per_kind(tmp_path, monkeypatch):
    monkeypatch.setattr(mqtt_link, "INBOX_ALERTS", 100)
    path, journal = make_journal(tmp_path)
    link = MqttLink(journal, path, DEVICE, signer(9).public_bytes, {})
    link.publish_alert({"kind": "sync_backlog", "key": "device", "action": "firing", "state": "firing"})
    for start in range(0, 1000, 60):                  # 17 lists, 1,000 transitions
        link.publish_alerts(_transitions(start, min(60, 1000 - start)))
    held = [a for alerts, _ in link._inbox for a in (alerts if isinstance(alerts, list) else [alerts])]
    assert len(held) <= 100 + 2 and link._inbox_alerts == len(held)
    assert held[-40:] == _transitions(960, 40)        # the newest list whole
    kinds = [a["kind"] for a in held]
    assert "sync_backlog" in kinds                    # an old list's only transition of its kind
    keys = [a["key"] for a in held if a["kind"] == "settlement_overdue"]
    assert keys == sorted(keys, key=lambda k: int(k[2:]))   # publishing order
    assert link.alert_messages_dropped == 1000 + 1 - len(held)
    journal.close()


def test_a_quiet_inbox_drops_nothing(tmp_path):
    path, journal = make_journal(tmp_path)
    link = MqttLink(journal, path, DEVICE, signer(9).public_bytes, {})
    for start in range(0, 300, 30):
        link.publish_alerts(_transitions(start, 30))
    assert link._inbox_alerts == 300 and link.alert_messages_dropped == 0
    journal.close()
