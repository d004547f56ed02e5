"""A settlement ack survives an agent killed right after receiving it
(SPEC 7.8.3, manual PUBACK in agent/mqtt_link.py).

Real mosquitto (TLS + ACL), a real backend process, a real agent process
killed with SIGKILL at a crash point (agent/fault_hook.py, armed through a
file named by DAOZHANG_FAULT_FILE):

- before the type 2 record is committed: the agent never sent its PUBACK,
  so after a restart the broker redelivers the ack from the persistent
  session and the settlement lands, exactly once;
- after the commit, before the PUBACK: the redelivery (DUP) carries the very
  bytes already journaled: counted as redelivered, nothing journaled again,
  no `security` replay alert.
"""

import json
import os

import pytest
from click.testing import CliRunner

from daozhang.agent.core import cbor
from daozhang.cli.main import cli
from daozhang.client import Client
from dztest.settlement_e2e import (
    alert_state, backdated_sale, csv_row, settlement_records, wait_alert, write_csv)
from dztest.sync_world import wait_for

pytestmark = pytest.mark.timeout(150)


def settle(world, csv_path):
    result = CliRunner().invoke(cli, ["backend", "settle", csv_path, "--config",
                                      world.backend_config("b1"), "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def settled_refs(config):
    return [cbor.loads(r.payload["ack"])["row"]["acquirer_ref"] for r in settlement_records(config)]


def crash_at(world, config, fault, point, csv_path, ref):
    """Arm `point`, settle one row, wait for the agent to kill itself, restart."""
    with open(fault, "w") as f:
        f.write(point)
    agent = world.agents[-1]
    report = settle(world, csv_path)
    assert report["sent"] == 1, report
    assert agent.proc.wait(60) == -9, "the agent should have been SIGKILLed at " + point
    assert not os.path.exists(fault)
    agent.close()
    return world.start_agent(config, env={"DAOZHANG_FAULT_FILE": fault})


def test_a_settlement_ack_lands_once_across_a_crash_at_either_side_of_the_commit(world, tmp_path):
    world.start_backend("b1")
    config, sock, _ = world.provision_agent("pos-crash-1")
    fault = str(tmp_path / "fault")
    agent = world.start_agent(config, env={"DAOZHANG_FAULT_FILE": fault})
    a = backdated_sale("C-A", "300000000001")
    b = backdated_sale("C-B", "300000000002", amount=20000)
    with Client(sock) as pos:
        pos.submit(a)
        pos.submit(b)
    wait_alert(config, "settlement_overdue", "firing", "C-A")
    wait_alert(config, "settlement_overdue", "firing", "C-B")
    store = world.store()
    wait_for(lambda: store.stats()["receipts"] == 2, 30, "receipts stored at the backend")

    # 1. Killed after receiving ACQ-A, before journaling it.
    agent = crash_at(world, config, fault, "settlement_before_journal",
                     write_csv(str(tmp_path / "a.csv"), [csv_row("ACQ-A", a)]), "ACQ-A")
    assert settled_refs(config) == [] or settled_refs(config) == ["ACQ-A"]
    wait_alert(config, "settlement_overdue", "resolved", "C-A")
    wait_for(lambda: settled_refs(config) == ["ACQ-A"], 30, "ACQ-A journaled once")

    # 2. Killed after journaling ACQ-B, before the PUBACK: redelivered, harmless.
    agent = crash_at(world, config, fault, "settlement_after_journal",
                     write_csv(str(tmp_path / "b.csv"), [csv_row("ACQ-B", b)]), "ACQ-B")
    wait_for(lambda: "event=settlement_redelivered" in agent.log_tail(200000), 30,
             "the redelivered ack recognised")
    assert settled_refs(config) == ["ACQ-A", "ACQ-B"]
    assert alert_state(config, "settlement_overdue", "C-B") == "resolved"
    assert alert_state(config, "security", "replay") is None
    assert "reason=replay" not in agent.log_tail(200000)
