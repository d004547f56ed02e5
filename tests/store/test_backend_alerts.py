"""The backend under an alert flood: duplicate checks of alerts without a
journal seq go through an index (not a scan of the device's alerts), and
`daozhang backend alerts --group` shows one line per terminal and kind."""

import json
import time

from click.testing import CliRunner

from daozhang.backend.alert_groups import groups
from daozhang.backend.store import open_store
from daozhang.cli.main import cli as main

NOW = int(time.time() * 1000)   # relative to the real clock: never goes stale
DAY = 86400000


def overdue(key, state, at, amount=1000, severity="warning", since=None):
    return {"action": "firing" if state == "firing" else "resolved", "at": at,
            "kind": "settlement_overdue", "key": key, "state": state, "severity": severity,
            "since": since if since is not None else at - DAY, "amount": amount,
            "currency": "CNY"}


def test_unjournaled_alerts_dedup_by_device_time_through_an_index(store_url):
    with open_store(store_url) as store:
        for i in range(2000):
            assert store.add_alert("pos-1", None, "security", "firing", "critical",
                                   {"at": NOW + i}, device_at=NOW + i)
        # The same ones again (a reconnect resends them): all refused.
        assert not any(store.add_alert("pos-1", None, "security", "firing", "critical",
                                       {"at": NOW + i}, device_at=NOW + i) for i in range(2000))
        # Same time, another device or another state: distinct alerts.
        assert store.add_alert("pos-2", None, "security", "firing", "critical", {"at": NOW},
                               device_at=NOW)
        assert store.add_alert("pos-1", None, "security", "resolved", "critical", {"at": NOW},
                               device_at=NOW)
        assert store.stats()["alerts"] == 2002


def test_grouped_view_per_terminal_and_kind(store_url, tmp_path):
    with open_store(store_url) as store:
        seq = 0
        for i in range(300):
            seq += 1
            store.add_alert("pos-1", seq, "settlement_overdue", "firing", "warning",
                            {"v": 1, "dev": "pos-1", "alert": overdue("S%d" % i, "firing",
                                                                    NOW - i, since=NOW - 5 * DAY - i)})
        for i in range(100):   # the acquirer's late file settled the first 100
            seq += 1
            store.add_alert("pos-1", seq, "settlement_overdue", "resolved", "warning",
                            {"v": 1, "dev": "pos-1", "alert": overdue("S%d" % i, "resolved", NOW)})
        store.add_alert("pos-2", 1, "settlement_overdue", "firing", "critical",
                        {"v": 1, "dev": "pos-2", "alert": overdue("X", "firing", NOW, 250,
                                                                  "critical")})
        rows = store.alerts()
    g = groups(rows)
    assert [(x["device"], x["kind"], x["firing"], x["amounts"], x["severity"]) for x in g] == [
        ("pos-1", "settlement_overdue", 200, {"CNY": 200000}, "warning"),
        ("pos-2", "settlement_overdue", 1, {"CNY": 250}, "critical")]
    assert g[0]["oldest"] == NOW - 5 * DAY - 299
    if not store_url.endswith(".db"):
        return
    out = CliRunner().invoke(main, ["backend", "alerts", "--group", "--db", store_url])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert len(lines) == 2
    assert "pos-1" in lines[0] and "200 firing, ¥2,000.00, oldest 5d" in lines[0]
    js = CliRunner().invoke(main, ["backend", "alerts", "--group", "--json", "--db", store_url])
    assert json.loads(js.output)["groups"][1]["device"] == "pos-2"


def test_a_batched_alerts_message_stores_every_transition_once(tmp_path):
    from daozhang.agent.core import cbor
    from daozhang.backend.service import Ingestor
    with open_store(str(tmp_path / "b.db")) as store:
        ingest = Ingestor(store, None)
        batch = [dict(overdue("S%d" % i, "firing", NOW + i), seq=10 + i) for i in range(256)]
        batch.append(dict(overdue("U", "firing", NOW), seq=None))    # journal refused it
        payload = cbor.dumps({"v": 1, "dev": "pos-1", "at": NOW, "alerts": batch})
        ingest.alert("pos-1", payload)
        ingest.alert("pos-1", payload)          # the broker delivers it again
        rows = store.alerts("pos-1")
        assert len(rows) == 257 and store.stats()["findings"] == 0
        assert rows[0]["payload"]["alert"]["key"] == "S0" and rows[-1]["seq"] is None
        # A batch of the wrong shape is one finding, nothing stored.
        ingest.alert("pos-1", cbor.dumps({"v": 1, "dev": "pos-1", "at": NOW, "alerts": [1, 2]}))
        assert store.stats()["findings"] == 1 and store.stats()["alerts"] == 257
