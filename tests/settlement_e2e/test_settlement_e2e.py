"""Settlement end to end over a real mosquitto (TLS + ACL), a real backend
process on SQLite and a real agent daemon process.

- a settlement CSV ingested by `daozhang backend settle` produces signed
  settlement acks; the device's overdue alerts resolve; a code-jumped row
  raises mcc_jump on the device, and the alert reaches the backend;
- forged settlement acks (wrong key, another device, replayed) are refused,
  raise `security`, and journal nothing as a settlement;
- re-ingesting the same CSV changes nothing;
- a clock stepped back a day at boot: clock_untrusted fires, and no
  deadline alert fires until the clock is trusted again.

Every wait is on a condition with a timeout; the simulated clock
(agent/sim_clock.py) is moved by rewriting its file.
"""

import json

import pytest
from click.testing import CliRunner

from daozhang.agent.core import cbor
from daozhang.agent.core.journal import record
from daozhang.signing import generate_keypair, load_signer
from daozhang.agent.sim_clock import write_clock_file
from daozhang.backend.ack import AckSigner
from daozhang.cli.main import cli
from daozhang.client import Client
from dztest.settlement_e2e import (
    DAY_MS, alert_state, alerts_json, backdated_sale, csv_row, journal_records, make_ack,
    plain_row, settlement_records, wait_alert, write_csv)
from dztest.sync_world import wait_for

pytestmark = pytest.mark.timeout(150)


def run_cli(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def settle(world, csv_path):
    code, out = run_cli("backend", "settle", csv_path, "--config", world.backend_config("b1"),
                        "--json")
    assert code == 0, out
    return json.loads(out)


def backend_alerts(world):
    code, out = run_cli("backend", "alerts", "--json", "--db", world.db)
    assert code == 0, out
    return json.loads(out)["alerts"]


def test_settlement_csv_to_device_and_alerts_back(world, tmp_path):
    world.start_backend("b1")
    config, sock, _ = world.provision_agent("pos-e2e-1")
    fast_heartbeat(config)
    agent = world.start_agent(config)
    a = backdated_sale("S-A", "100000000001")
    b = backdated_sale("S-B", "100000000002", amount=20000)
    with Client(sock) as pos:
        seq_a = pos.submit(a)["seq"]
        seq_b = pos.submit(b)["seq"]
    # Both sales are days past their T1 deadline: overdue, firing, grouped.
    wait_alert(config, "settlement_overdue", "firing", "S-A")
    wait_alert(config, "settlement_overdue", "firing", "S-B")
    assert alerts_json(config)["summary"]["display"].startswith("2 payments overdue, ¥300.00")
    store = world.store()
    wait_for(lambda: store.stats()["receipts"] == 2, 30, "receipts stored at the backend")
    # Acknowledged, but not released: the watchdog holds the unsettled sales.
    wait_for(lambda: newest_cursors(config)[0] > seq_b, 30, "cursors committed past the sales")
    assert newest_cursors(config)[1] <= seq_a

    csv_path = write_csv(str(tmp_path / "settle.csv"), [
        csv_row("ACQ-1", a),                                  # fine, but late
        csv_row("ACQ-2", b, fee=110, mcc="5411"),            # code-jumped MCC
        csv_row("ACQ-3", a, rrn="999999999999").replace(a["auth_code"], "ZZZZZZ"),  # matches nothing
        "ACQ-4,102290058120001,SH000001,1,2,x,sale,,oops,1,1,2026-11-20T10:00:00+08:00,,",
    ])
    report = settle(world, csv_path)
    assert report["rows"] == 3 and report["new"] == 3
    assert [bad["line"] for bad in report["bad_rows"]] == [5]
    assert (report["sent"], report["unknown"], report["unrouted"]) == (2, 1, 0)
    assert report["devices"] == {"pos-e2e-1": 3}

    # The device checked each ack; overdue resolved, mcc_jump and the unknown settlement fire.
    wait_alert(config, "settlement_overdue", "resolved", "S-A")
    wait_alert(config, "settlement_overdue", "resolved", "S-B")
    wait_alert(config, "mcc_jump", "firing", "S-B")
    wait_alert(config, "unknown_settlement", "firing", "ACQ-3")
    journaled = {cbor.loads(r.payload["ack"])["row"]["acquirer_ref"]: r.payload["checks"]
                 for r in settlement_records(config)}
    assert set(journaled) == {"ACQ-1", "ACQ-2", "ACQ-3"}
    assert journaled["ACQ-1"][0]["checks"] == ["late"]
    assert "mcc_jump" in journaled["ACQ-2"][0]["checks"]
    assert journaled["ACQ-3"][0]["checks"] == ["unknown_settlement"]
    # The settlements are stored by acquirer_ref with their verdicts.
    stored = {s["acquirer_ref"]: (s["device_id"], s["status"]) for s in store.settlements()}
    assert stored == {"ACQ-1": ("pos-e2e-1", "sent"), "ACQ-2": ("pos-e2e-1", "sent"),
                      "ACQ-3": ("pos-e2e-1", "unknown")}

    # The alert reaches the backend.
    wait_for(lambda: any(x["device_id"] == "pos-e2e-1" and x["kind"] == "mcc_jump"
                         and x["state"] == "firing" for x in backend_alerts(world)),
             30, "mcc_jump stored at the backend")
    # The retained status carries the alert summary (the mcc_jump line among them).
    watcher = world.broker.connect("backend")
    try:
        watcher.subscribe("daozhang/v1/pos-e2e-1/status")
        seen = watcher.messages_until(
            lambda m: "another MCC" in str(cbor.loads(m.payload).get("alerts", {}).get("display")), 30)
        status_msg = cbor.loads(seen[-1].payload)
        assert status_msg["state"] == "online" and status_msg["alerts"]["worst"] == "critical"
    finally:
        watcher.close()
    code, out = run_cli("agent", "alerts", "--config", config, "--json")
    assert code == 0 and any(x["kind"] == "mcc_jump" for x in json.loads(out)["alerts"])

    # Re-ingesting the same file changes nothing and sends nothing.
    before = store.settlements()
    again = settle(world, csv_path)
    assert (again["new"], again["already"], again["sent"], again["unknown"]) == (0, 3, 0, 0)
    assert [bad["line"] for bad in again["bad_rows"]] == [5]
    assert store.settlements() == before

    # Forged settlement acks: wrong key, another device's, a replay.
    forger_prefix = str(tmp_path / "forger")
    generate_keypair(forger_prefix)
    forger = AckSigner(load_signer(forger_prefix + ".key"))
    genuine = AckSigner(load_signer(world.backend_key + ".key"))
    c = backdated_sale("S-C", "100000000003")
    with Client(sock) as pos:
        pos.submit(c)
    wait_alert(config, "settlement_overdue", "firing", "S-C")
    row_c = plain_row("ACQ-9", c["rrn"])
    real = make_ack(genuine, "pos-e2e-1", row_c)
    probe = world.broker.connect("backend")
    try:
        topic = "daozhang/v1/pos-e2e-1/acks"
        probe.publish(topic, make_ack(forger, "pos-e2e-1", row_c))           # wrong key
        probe.publish(topic, make_ack(genuine, "pos-other", row_c))          # another device
        wait_alert(config, "security", "firing", "unknown_key")
        wait_alert(config, "security", "firing", "wrong_device")
        assert alert_state(config, "settlement_overdue", "S-C") == "firing"
        probe.publish(topic, real)                                           # genuine
        wait_alert(config, "settlement_overdue", "resolved", "S-C")
        probe.publish(topic, real)              # the same bytes again: a re-send, no change
        reused = make_ack(genuine, "pos-e2e-1", plain_row("ACQ-10", c["rrn"]),
                          ack_id=cbor.loads(real)["id"])
        probe.publish(topic, reused)            # an accepted id on other bytes: a replay
        wait_alert(config, "security", "firing", "replay")
    finally:
        probe.close()
    refs = [cbor.loads(r.payload["ack"])["row"]["acquirer_ref"] for r in settlement_records(config)]
    assert sorted(refs) == ["ACQ-1", "ACQ-2", "ACQ-3", "ACQ-9"]
    wait_for(lambda: world.status(config).get("rejected_by_reason") == {"unknown_key": 1,
                                                                        "wrong_device": 1,
                                                                        "replay": 1},
             30, "rejections counted in sync-status.json")
    # Every sale settled: the released cursor passes them.
    wait_for(lambda: newest_cursors(config)[1] > seq_b, 60, "released past the settled sales")
    assert agent.terminate() == 0


def fast_heartbeat(config):
    """The daemon ticks (clock check, heartbeat commit) every second."""
    with open(config) as f:
        text = f.read()
    with open(config, "w") as f:
        f.write(text.replace("heartbeat_s = 20", "heartbeat_s = 1"))


def newest_cursors(config):
    """(acked, released) of the newest checkpoint in the device's journal."""
    cps = journal_records(config, record.TYPE_CHECKPOINT)
    return cps[-1].payload["acked"], cps[-1].payload["released"]


def overdue_actions(config):
    return [(r.payload["key"], r.payload["action"]) for r in journal_records(config, record.TYPE_ALERT)
            if r.payload["kind"] == "settlement_overdue"]


def test_clock_stepped_back_holds_deadline_alerts(world, tmp_path):
    config, sock, _ = world.provision_agent("pos-e2e-2")
    fast_heartbeat(config)              # the daemon checks its clock every second
    clock_file = str(tmp_path / "clock.json")
    write_clock_file(clock_file, 0)
    env = {"DAOZHANG_SIM_CLOCK": clock_file}

    from dztest.agent_daemon import AgentProcess
    first = AgentProcess(config, config + ".log", env=env).start()
    with Client(sock) as pos:
        pos.submit(backdated_sale("S-1", "200000000001"))
    wait_alert(config, "settlement_overdue", "firing", "S-1")
    assert first.terminate() == 0
    first.close()
    boot1_overdue = overdue_actions(config)
    assert boot1_overdue[:2] == [("S-1", "pending"), ("S-1", "firing")]

    # Boot with the clock a day behind the journal: not trusted.
    write_clock_file(clock_file, -DAY_MS)
    second = AgentProcess(config, config + ".log", env=env)
    world.agents.append(second)
    second.start()
    wait_alert(config, "clock_untrusted", "firing", "clock")
    with Client(sock) as pos:
        receipt = pos.submit(backdated_sale("S-2", "200000000002"))
    assert receipt["clock_trusted"] is False
    # The backdated sale was judged when it was committed (before the POS got
    # its receipt): on an untrusted clock, no deadline alert.
    assert alert_state(config, "settlement_overdue", "S-2") is None
    assert overdue_actions(config) == boot1_overdue    # nothing fired, escalated or repeated

    # The clock is right again: clock_untrusted resolves, S-2 becomes overdue.
    write_clock_file(clock_file, 0)
    wait_alert(config, "clock_untrusted", "resolved", "clock")
    wait_alert(config, "settlement_overdue", "firing", "S-2")
    # S-1's alert was rebuilt from the journal, not raised again.
    assert overdue_actions(config).count(("S-1", "firing")) == 1
    assert second.terminate() == 0
