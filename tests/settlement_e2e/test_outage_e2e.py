"""The acquirer's worst day, end to end: a real agent daemon, a real
mosquitto (TLS + ACL) and a real backend process.

Sales dated days back arrive from several POS clients and nothing settles:
every one is overdue.  The till keeps answering; the terminal shows one
grouped line (count, total, oldest), never thousands; the backend stores
every alert transition and `daozhang backend alerts --group` shows the same
group.  Then the acquirer's late file arrives: every overdue alert resolves
on the terminal and at the backend.  Bounded: N sales, a wall-time limit,
and the journal holds exactly the transitions the outage implies.
"""

import json
import re
import threading

import pytest
from click.testing import CliRunner

from daozhang.agent.core.journal import record
from daozhang.cli.main import cli
from daozhang.client import Client
from dztest.settlement_e2e import (
    DAY_MS, alerts_json, backdated_sale, csv_row, journal_records, now_ms, write_csv)
from dztest.sync_world import wait_for

pytestmark = pytest.mark.timeout(400)

SALES = 1500
CLIENTS = 6
AMOUNT = 10000      # its contracted debit fee is the 55 csv_row charges


def submit_all(sock, sales):
    """The POS side: CLIENTS connections, each submitting its share."""
    receipts, errors = [], []

    def client(share):
        try:
            with Client(sock) as pos:
                for txn in share:
                    receipts.append(pos.submit(txn))
        except Exception as exc:   # reported below, never swallowed
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(sales[i::CLIENTS],)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return receipts


def groups_at_backend(world, device):
    result = CliRunner().invoke(cli, ["backend", "alerts", "--group", "--json", "--db", world.db],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return [g for g in json.loads(result.output)["groups"] if g["device"] == device]


def test_outage_then_the_late_file_resolves_everything(world, tmp_path):
    world.start_backend("b1")
    device = "pos-outage-1"
    config, sock, _ = world.provision_agent(device, journal_size="32MiB", segment_size="256KiB")
    world.start_agent(config)
    # Sales three to six days old: all past their T1 deadline on arrival.
    now = now_ms()
    sales = [backdated_sale("OUT-%05d" % i, "7%011d" % i, days_ago=3 + (i % 4), amount=AMOUNT)
             for i in range(SALES)]
    oldest_since_bound = now - 6 * DAY_MS
    receipts = submit_all(sock, sales)
    assert len(receipts) == SALES and all(not r["duplicate"] for r in receipts)

    # The terminal: one grouped line, every sale counted, a bounded alerts.json.
    wait_for(lambda: alerts_json(config).get("summary", {}).get("firing") == SALES, 120,
             "every overdue sale firing on the terminal")
    shown = alerts_json(config)
    line = shown["summary"]["display"]
    assert line.startswith("%d payments overdue, ¥%s" % (SALES, "{:,.2f}".format(
        SALES * AMOUNT / 100))), line
    # Oldest: the earliest deadline missed (a six-day-old sale's T1 deadline,
    # 2 to 5 days back whatever the weekday and holidays).
    age = re.search(r", oldest (\d+)d$", line)
    assert age and 2 <= int(age.group(1)) <= 6, line
    group = shown["summary"]["groups"][0]
    assert (group["kind"], group["count"]) == ("settlement_overdue", SALES)
    assert group["oldest"] >= oldest_since_bound - DAY_MS
    assert shown["alerts_total"] == SALES and len(shown["alerts"]) <= 200
    code = CliRunner().invoke(cli, ["agent", "alerts", "--config", config])
    lines = code.output.splitlines()
    assert code.exit_code == 0 and lines[0] == line
    assert len(lines) == 22 and lines[-1].startswith("... and %d more" % (SALES - 20))

    # The backend: every transition stored, the same group per terminal.
    wait_for(lambda: [(g["kind"], g["firing"]) for g in groups_at_backend(world, device)] ==
             [("settlement_overdue", SALES)], 180, "the backend's grouped view")

    # Alerts went up ahead of the receipts; the settlement file is routed by
    # the stored receipts, so the backend must hold them all first.
    store = world.store()
    wait_for(lambda: store.stats()["receipts"] == SALES, 180, "every receipt at the backend")

    # The acquirer's late file: every sale settles, late.
    csv_path = write_csv(str(tmp_path / "late.csv"),
                         [csv_row("LATE-%05d" % i, s) for i, s in enumerate(sales)])
    result = CliRunner().invoke(cli, ["backend", "settle", csv_path, "--config",
                                      world.backend_config("b1"), "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["sent"] == SALES
    wait_for(lambda: alerts_json(config).get("summary", {}).get("display") ==
             "all payments in order", 180,
             lambda: "every overdue alert resolved on the terminal (it shows %r)"
             % alerts_json(config).get("summary", {}).get("display"))
    wait_for(lambda: groups_at_backend(world, device) == [], 120,
             "every overdue alert resolved at the backend")

    # Bounded: per sale exactly pending, firing and resolved, escalated at
    # most once (those a business day past their deadline), nothing repeated.
    actions = {}
    for rec in journal_records(config, record.TYPE_ALERT):
        if rec.payload["kind"] == "settlement_overdue":
            actions[rec.payload["action"]] = actions.get(rec.payload["action"], 0) + 1
    assert actions.pop("escalated", 0) <= SALES
    assert actions == {"pending": SALES, "firing": SALES, "resolved": SALES}
