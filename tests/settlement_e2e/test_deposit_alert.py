"""A payout missing or short at the bank becomes an alert on the terminals
whose sales it carried (issue 14; SPEC 7.10.2): the backend's signed
"deposit" message, the terminal's checks of it, and the alert it raises."""

import os

import pytest

from daozhang.agent.alert_texts import display_text
from daozhang.agent.core import cbor
from daozhang.agent.core.errors import RemoteError
from daozhang.agent.core.settlement.alerts import AlertMachine
from daozhang.agent.core.sync import deposit_alert as da
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.agent.core.sync.sync_core import DOWN_KINDS, SyncCore
from daozhang.agent.mqtt_link import ed25519_verify
from daozhang.backend.ack import AckSigner
from daozhang.backend.deposit_alerts import deposit_payloads
from daozhang.backend.settle import Settler
from daozhang.backend.store import open_store
from daozhang.cli.backend.settle import _payouts, _tallied
from daozhang.i18n import texts_for
from daozhang.settlement_files import parse_settlement_text
from daozhang.settlement_files.bank import BankStatement
from dztest.dates import DAY_MS, SALE_MS, rfc3339
from dztest.settlement_e2e import csv_text, stored_receipts
from dztest.settlement_plugin import FakeDaemon, settlement_plugin
from dztest.sync import make_journal, signer, txn_payload

BACKEND = AckSigner(signer(9))
OTHER = AckSigner(signer(11))
DAY = "2030-01-02"
NOW = 1800000000000


def finding(status="deposit_short", expected=30000, received=29000, sales=("S1", "S2")):
    return {"day": DAY, "status": status, "expected": expected, "received": received,
            "sales": list(sales), "devices": {"pos-a": list(sales)}}


def decode(payload, dev="pos-a", backend=BACKEND):
    return msgs.decode_down(payload, dev, backend.public_bytes, backend.kid, ed25519_verify,
                            kinds=DOWN_KINDS)


def test_a_short_payout_raises_a_critical_alert_naming_day_amounts_and_sales():
    [(dev, payload)] = deposit_payloads([finding()], BACKEND, "CNY", clock=lambda: NOW)
    msg = decode(payload, dev)
    assert (dev, msg["day"], msg["expected"], msg["received"], msg["sales"]) == (
        "pos-a", DAY, 30000, 29000, ["S1", "S2"])
    machine = AlertMachine()
    actions = machine.observe(da.observation(msg, NOW))
    assert [(a["action"], a["kind"], a["key"], a["severity"], a["amount"]) for a in actions] == [
        ("pending", "deposit_short", DAY, "critical", 1000),
        ("firing", "deposit_short", DAY, "critical", 1000)]
    assert actions[-1]["detail"] == {"day": DAY, "expected": 30000, "received": 29000,
                                     "sales": ["S1", "S2"]}
    # Delivered again (QoS 1, a second settle run): nothing new.
    assert machine.observe(da.observation(decode(payload), NOW + 1)) == []
    summary = machine.status_summary(NOW)
    assert summary["display"] == "1 payout short at the bank, ¥10.00, oldest 0m"
    assert display_text(summary, texts_for("zh-CN"), NOW) == "1 笔结算款到账不足，¥10.00，最早 0分钟"


def test_a_missing_payout_alerts_the_whole_expected_amount():
    [(_dev, payload)] = deposit_payloads([finding("deposit_missing", received=None)], BACKEND,
                                         "CNY", clock=lambda: NOW)
    obs = da.observation(decode(payload), NOW)
    assert (obs["kind"], obs["amount"], obs["detail"]["received"]) == ("deposit_missing", 30000,
                                                                         None)


@pytest.mark.parametrize("name,value", [("expected", 30001), ("day", "2030-01-03"),
                                        ("sales", ["S1"]), ("status", "deposit_missing")])
def test_a_tampered_deposit_message_is_refused(name, value):
    [(_dev, payload)] = deposit_payloads([finding()], BACKEND, "CNY", clock=lambda: NOW)
    msg = cbor.loads(payload)
    msg[name] = value
    with pytest.raises(msgs.DownRejected):
        decode(cbor.dumps(msg))


def test_signed_by_another_key_or_for_another_terminal_is_refused():
    [(_dev, payload)] = deposit_payloads([finding()], OTHER, "CNY", clock=lambda: NOW)
    with pytest.raises(msgs.DownRejected):
        decode(payload)
    [(_dev, payload)] = deposit_payloads([finding()], BACKEND, "CNY", clock=lambda: NOW)
    with pytest.raises(msgs.DownRejected):
        decode(payload, dev="pos-b")


@pytest.mark.parametrize("change,why", [
    ({"received": 30000}, "short deposit is below expected"),
    ({"status": "deposit_missing"}, "missing deposit received nothing"),
    ({"day": "05/01/2030"}, "day: expected a date"),
    ({"sales": ["S%d" % i for i in range(da.MAX_SALES + 1)]}, None),
])
def test_the_backend_refuses_to_sign_a_wrong_finding(change, why):
    f = finding()
    f.update(change)
    f["devices"] = {"pos-a": f["sales"]}
    if why is None:      # more sales than a message carries: the first MAX_SALES go
        [(_d, payload)] = deposit_payloads([f], BACKEND, "CNY", clock=lambda: NOW)
        assert len(decode(payload)["sales"]) == da.MAX_SALES
        return
    with pytest.raises(RemoteError, match=why):
        deposit_payloads([f], BACKEND, "CNY", clock=lambda: NOW)


def test_backend_settle_bank_alerts_each_terminal_of_a_short_day(tmp_path):
    """Two terminals' sales settle on one day; the bank credit is short: each
    terminal gets one deposit message naming its own sales; a day that
    arrived whole alerts nobody."""
    store = open_store(str(tmp_path / "b.db"))
    a1, a2 = txn_payload(1, amount=10000), txn_payload(2, amount=20000)
    b1 = txn_payload(3, amount=5000)
    stored_receipts(store, "pos-a", [a1, a2])
    stored_receipts(store, "pos-b", [b1])
    settled = rfc3339(SALE_MS + DAY_MS)
    rows = [{"acquirer_ref": "X%d" % i, "terminal_id": "SH000001", "rrn": t["rrn"],
             "amount": t["amount"], "fee": 0, "settled_amount": t["amount"], "settled_at": settled}
            for i, t in enumerate((a1, a2, b1))]
    parsed = parse_settlement_text(csv_text(rows))
    sent = Published()
    settler = Settler(store, BACKEND, sent, random_bytes=os.urandom)
    stream = _Stream(parsed)
    bank = BankStatement("bank.csv", [], [], None, 3, 0)
    stream, tally = _tallied(stream, bank, settler.matcher)
    settler.settle(stream)
    [day] = tally.days.values()
    bank.credits = [{"line": 2, "day": day.day, "amount": 34000, "counterparty": "银联商务",
                     "memo": ""}]
    deposits = Published()
    payouts = _payouts(tally, bank, BACKEND, deposits)
    assert payouts["counts"]["deposit_short"] == 1
    assert payouts["alerts_sent"] == {"pos-a": 1, "pos-b": 1}
    got = dict((dev, decode(p, dev)) for dev, p in deposits)
    assert sorted(got["pos-a"]["sales"]) == sorted([a1["pos_txn_id"], a2["pos_txn_id"]])
    assert got["pos-b"]["sales"] == [b1["pos_txn_id"]]
    assert (got["pos-a"]["expected"], got["pos-a"]["received"]) == (35000, 34000)
    # The whole payout arrived: no deposit message.
    bank.credits[0]["amount"] = 35000
    quiet = Published()
    assert _payouts(tally, bank, BACKEND, quiet)["alerts_sent"] == {} and quiet == []
    store.close()


class Published(list):
    def __call__(self, device_id, payload):
        self.append((device_id, payload))


class _Stream:
    """A parsed file seen as a SettlementStream (rows() and info), as the CLI reads one."""

    def __init__(self, parsed):
        self.info = parsed
        self._rows = parsed.rows

    def rows(self):
        return iter(self._rows)


def test_the_agent_routes_a_deposit_message_to_its_watchdog_which_alerts(tmp_path):
    """The sync core hands a verified deposit message on as ("deposit", msg)
    (the link's deposit_hook, agent/assemble.py); the watchdog raises the
    alert, journals it, and a redelivery changes nothing."""
    _, journal = make_journal(tmp_path, device="pos-plug-1")
    try:
        daemon = FakeDaemon(tmp_path, journal)
        plugin = settlement_plugin(daemon)
        core = SyncCore("pos-plug-1", BACKEND.public_bytes, BACKEND.kid, ed25519_verify,
                        lambda seq: None, 0, journal.ring.next_seq)
        payload = da.encode("pos-plug-1", os.urandom(16), daemon.now, finding(), "CNY",
                            BACKEND.kid, BACKEND.signer.sign)
        actions = core.message("acks", payload, daemon.now)
        assert [a[0] for a in actions] == ["deposit"]
        plugin.on_deposit(actions[0][1])
        firing = [a for a in plugin.current_alerts() if a["kind"] == "deposit_short"]
        assert len(firing) == 1 and firing[0]["key"] == DAY
        plugin.on_deposit(actions[0][1])
        assert len([a for a in plugin.current_alerts() if a["kind"] == "deposit_short"]) == 1
    finally:
        journal.close()
