"""The settlement plugin in-process on a real journal file (no broker):
journaling of settlement acks and alert transitions, the release floor,
hook alerts, and a restart that rebuilds the same state from the journal."""

import itertools
import os

import pytest

from daozhang.agent.core import cbor
from daozhang.agent.core.errors import JournalFull
from daozhang.agent.core.journal import record
from daozhang.agent.core.sync import settlement_ack as sa
from daozhang.backend.ack import AckSigner
from daozhang.cli.agent.alerts import alerts_from_journal
from dztest.settlement_e2e import backdated_sale, now_ms, plain_row
from dztest.settlement_plugin import FakeDaemon, settlement_plugin
from dztest.sync import make_journal, signer

BACKEND = AckSigner(signer(9))


def commit(daemon, txn):
    seq = daemon.journal.append(record.TYPE_TRANSACTION, txn).seq
    for listener in daemon.transaction_listeners:
        listener(seq, txn)
    return seq


_NUMBERS = itertools.count(1)


def deliver(plugin, row, ack_id=None):
    payload = sa.encode("pos-plug-1", ack_id or os.urandom(16), now_ms(), None, row, BACKEND.kid,
                        BACKEND.signer.sign, next(_NUMBERS))
    plugin.on_settlement(cbor.loads(payload), payload)
    return payload


@pytest.fixture
def setup(tmp_path):
    path, journal = make_journal(tmp_path, device="pos-plug-1")
    daemon = FakeDaemon(tmp_path, journal)
    yield tmp_path, path, journal, daemon
    journal.close()


def test_plugin_journals_and_rebuilds_the_same_state(setup):
    tmp, path, journal, daemon = setup
    plugin = settlement_plugin(daemon)
    seq_a = commit(daemon, backdated_sale("P-A", "400000000001"))
    seq_b = commit(daemon, backdated_sale("P-B", "400000000002"))
    assert plugin.machine.alerts[("settlement_overdue", "P-A")]["state"] == "firing"
    assert plugin.release_floor() == seq_a
    deliver(plugin, plain_row("R-A", "400000000001"))
    assert plugin.release_floor() == seq_b
    bad = plain_row("R-B", "400000000002")
    bad["mcc"] = "5411"
    replayed = deliver(plugin, bad, ack_id=b"\x07" * 16)
    assert plugin.release_floor() is None
    assert plugin.machine.alerts[("mcc_jump", "P-B")]["state"] == "firing"
    # The same bytes again (the backend re-sends until the terminal confirms,
    # SPEC 7.8.7), a duplicate row, and other bytes under an accepted id (a
    # replay) journal nothing as a settlement; only the replay alerts.
    plugin.on_settlement(cbor.loads(replayed), replayed)
    assert ("security", "replay") not in plugin.machine.alerts
    deliver(plugin, bad)                      # the same acquirer_ref under a new id
    forged = sa.encode("pos-plug-1", b"\x07" * 16, now_ms(), None, plain_row("R-Y", "400000000008"),
                       BACKEND.kid, BACKEND.signer.sign, 99)
    assert plugin.on_settlement(cbor.loads(forged), forged)["rejected"] == ["replay"]
    assert plugin.machine.alerts[("security", "replay")]["state"] == "firing"
    assert plugin.counts == {"settlement_acks": 2, "duplicates": 1, "replays": 1, "invalid": 0,
                             "redelivered": 1}
    # Hook alerts: journal_near_full raised and cleared by the sync link.
    plugin.on_hook_alert("journal_near_full", "warning", {"fill": "0.810"})
    plugin.on_hook_alert("journal_near_full", "info", {"state": "clear"})
    assert plugin.machine.alerts[("journal_near_full", "device")]["state"] == "resolved"
    records = list(journal.records())
    acks = [r for r in records if r.type == record.TYPE_SETTLEMENT_ACK]
    assert [a.payload["checks"][0]["acquirer_ref"] for a in acks] == ["R-A", "R-B"]
    assert acks[1].payload["checks"][0]["checks"] == ["late", "mcc_jump"]
    alert_actions = [r.payload for r in records if r.type == record.TYPE_ALERT]
    assert len(alert_actions) >= 8

    # Restart: a new plugin on the same journal rebuilds the same state.
    again = settlement_plugin(FakeDaemon(tmp, journal))
    assert again.machine.state() == plugin.machine.state()
    assert again.watchdog.state() == plugin.watchdog.state()
    assert again.release_floor() is None
    # The same bytes after the restart (a re-send, or the broker redelivering
    # after a crash ate our PUBACK): counted, no alert, nothing journaled.
    before = len(list(journal.records()))
    alerts_before = again.current_alerts()
    again.on_settlement(cbor.loads(replayed), replayed)
    again.on_settlement(cbor.loads(replayed), replayed, redelivered=True)
    assert again.counts["redelivered"] == 2 and again.counts["replays"] == 0
    assert [r for r in journal.records()][before:] == []
    assert again.current_alerts() == alerts_before
    # Another message under an accepted id is a replay even when marked DUP.
    other = sa.encode("pos-plug-1", b"\x07" * 16, now_ms(), None, plain_row("R-X", "400000000009"),
                      BACKEND.kid, BACKEND.signer.sign, 100)
    again.on_settlement(cbor.loads(other), other, redelivered=True)
    assert again.counts["replays"] == 1
    # `daozhang agent alerts --from-journal` sees what the agent sees.
    rebuilt = alerts_from_journal(path)
    assert [(a["kind"], a["key"], a["state"]) for a in rebuilt["alerts"]] == [
        (a["kind"], a["key"], a["state"]) for a in again.current_alerts()]


def test_untrusted_clock_holds_overdue_and_journal_full_clears(setup):
    tmp, path, journal, daemon = setup
    daemon.clock.trusted = False
    plugin = settlement_plugin(daemon)
    plugin.start()
    try:
        commit(daemon, backdated_sale("P-C", "400000000003"))
        plugin.tick()
        assert ("settlement_overdue", "P-C") not in plugin.machine.alerts
        assert plugin.machine.alerts[("clock_untrusted", "clock")]["state"] == "firing"
        daemon.clock.trusted = True
        plugin.tick()
        assert plugin.machine.alerts[("clock_untrusted", "clock")]["state"] == "resolved"
        assert plugin.machine.alerts[("settlement_overdue", "P-C")]["state"] == "firing"
        plugin.on_hook_alert("journal_full", "critical", {"detail": "full"})
        assert plugin.machine.alerts[("journal_full", "device")]["state"] == "firing"
        commit(daemon, backdated_sale("P-D", "400000000004"))
        plugin.drain()   # started: sales are judged on the plugin's thread; judge now
        assert plugin.machine.alerts[("journal_full", "device")]["state"] == "resolved"
    finally:
        plugin.stop()


def test_alerts_still_show_when_the_journal_refuses_them(setup, monkeypatch):
    tmp, path, journal, daemon = setup
    plugin = settlement_plugin(daemon)

    def full(entries, acked=None, released=None):
        raise JournalFull("no segment can be reclaimed")

    monkeypatch.setattr(journal, "append_many", full)
    plugin.on_hook_alert("security", "critical", {"reason": "bad_signature"})
    assert plugin.machine.alerts[("security", "bad_signature")]["state"] == "firing"
    assert any(e == "alert_journal_failed" for e, _ in daemon.events)
    assert "1 rejected message" in open(plugin.alerts_file).read()


def _rebuilt(daemon):
    return [kw for event, kw in daemon.events if event == "settlement_rebuilt"][-1]


def test_the_index_is_reused_and_a_lost_one_is_rebuilt_from_the_journal(setup):
    """Invariant: the sale index is derived from the journal.  A restart
    reads only the records after its cursor; with the file deleted (or from
    another journal) the whole journal rebuilds the same state."""
    tmp, path, journal, daemon = setup
    plugin = settlement_plugin(daemon)
    commit(daemon, backdated_sale("P-E", "400000000005"))
    commit(daemon, backdated_sale("P-F", "400000000006"))
    deliver(plugin, plain_row("R-E", "400000000005"))
    state, machine, floor = plugin.watchdog.state(), plugin.machine.state(), plugin.release_floor()
    plugin.stop()
    assert set(state["transactions"]) == {"P-E", "P-F"} and state["unsettled"] == ["P-F"]

    warm_daemon = FakeDaemon(tmp, journal)
    warm = settlement_plugin(warm_daemon)
    assert _rebuilt(warm_daemon)["index"] == "reused"
    assert _rebuilt(warm_daemon)["transactions"] == 0      # nothing replayed but the tail
    assert (warm.watchdog.state(), warm.machine.state()) == (state, machine)
    assert warm.release_floor() == floor
    warm.stop()
    assert plugin.index.db.conn is None     # stopped plugins let go of the file

    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + ".watchdog.sqlite" + suffix):
            os.unlink(path + ".watchdog.sqlite" + suffix)
    cold_daemon = FakeDaemon(tmp, journal)
    cold = settlement_plugin(cold_daemon)
    assert _rebuilt(cold_daemon)["index"] == "new" and _rebuilt(cold_daemon)["transactions"] == 2
    assert (cold.watchdog.state(), cold.machine.state()) == (state, machine)
    assert cold.release_floor() == floor
    deliver(cold, plain_row("R-E", "400000000005"))       # the same acquirer ref again
    assert cold.counts["duplicates"] == 1
    cold.stop()


def test_sales_queued_past_the_payload_cap_are_read_back_from_the_journal(setup, monkeypatch):
    """The POS outruns the watchdog: past QUEUE_BYTES only seqs wait, and
    each sale is still judged, in journal order, from the journal's copy."""
    import daozhang.agent.settlement_plugin as sp
    tmp, path, journal, daemon = setup
    sales = [backdated_sale("Q-%d" % i, "60000000000%d" % i) for i in range(10)]
    # Room for the first three sales' bytes (each as long as the others).
    one = len(cbor.dumps(sales[0])) + sp.QUEUE_ENTRY_OVERHEAD
    monkeypatch.setattr(sp, "QUEUE_BYTES", 3 * one)
    plugin = settlement_plugin(daemon)
    plugin._inline = False          # as once started, without its thread
    try:
        for txn in sales:
            commit(daemon, txn)
        assert plugin.pending_sales() == 10
        assert sum(1 for _, p in plugin._incoming if p is None) == 7
        first = min(seq for seq, _ in plugin._incoming)
        assert plugin.release_floor() == first      # the journal keeps what waits
        assert plugin.drain() == 10 and plugin.pending_sales() == 0
        assert plugin._incoming_bytes == 0
        firing = [k for (kind, k), r in plugin.machine.alerts.items()
                  if kind == "settlement_overdue" and r["state"] == "firing"]
        assert sorted(firing) == ["Q-%d" % i for i in range(10)]
    finally:
        plugin.stop()


def test_a_pass_of_new_sales_costs_the_index_a_few_statements(setup):
    """The drain judges a pass inside SqliteSaleIndex.judging(): its keys
    looked up at once (two statements per 64 keys), its new sales inserted
    already watched, 32 rows a statement and the rest one each: 70 new sales
    cost 12 statements on the sale tables, not 350 (each lets the GIL go)."""
    from dztest.agent_daemon import sale
    tmp, path, journal, daemon = setup
    plugin = settlement_plugin(daemon)
    plugin._inline = False          # as once started, without its thread
    seen = []
    try:
        for i in range(70):
            commit(daemon, sale("N-%d" % i, rrn="7000000000%02d" % i))
        plugin.index.db.conn.set_trace_callback(seen.append)
        assert plugin.drain() == 70
        plugin.index.db.conn.set_trace_callback(None)
        on_sales = [q for q in seen if " txn " in q or " cancel " in q]
        assert len(on_sales) == 4 + 2 + 6, on_sales
        assert plugin.index.unsettled_keys() == sorted("N-%d" % i for i in range(70))
    finally:
        plugin.stop()


class FakeLink:
    """What SettlementPlugin uses of the sync link (agent/mqtt_link.py)."""

    def __init__(self, acked, next_seq, state):
        self.published = []
        self.pos = {"acked": acked, "next_seq": next_seq, "state": state}

    def publish_alerts(self, alerts):
        self.published.extend(alerts)

    def position(self):
        return dict(self.pos)


def test_alerts_raised_before_the_link_is_attached_go_up_at_the_attach(setup):
    """The link raises `security` while it is being built (a saved anchor
    that does not match the journal): journaled at once, published once
    attached, with the seq of its type 3 record."""
    tmp, path, journal, daemon = setup
    plugin = settlement_plugin(daemon)
    try:
        plugin.on_hook_alert("security", "critical", {"reason": "anchor", "detail": "saved ack anchor"})
        link = FakeLink(0, 0, "offline")
        plugin.attach(link)
        assert [(a["kind"], a["key"], a["state"]) for a in link.published] == \
            [("security", "anchor", "pending"), ("security", "anchor", "firing")]
        seq = link.published[0]["seq"]
        assert next(iter(journal.records(from_seq=seq))).type == record.TYPE_ALERT
        plugin.on_hook_alert("journal_full", "critical", {"detail": "x"})     # after: at once
        assert [a["kind"] for a in link.published][-1] == "journal_full"
    finally:
        plugin.stop()


def test_a_plugin_without_a_link_drops_nothing_it_journaled_and_publishes_nothing(setup):
    tmp, path, journal, daemon = setup
    plugin = settlement_plugin(daemon)
    plugin.on_hook_alert("journal_full", "critical", {"detail": "x"})
    plugin.start()                      # no attach: sync is not configured
    try:
        assert plugin.link is None and plugin._unpublished == []
        assert ("journal_full", "device") in plugin.machine.alerts
    finally:
        plugin.stop()


def test_sync_backlog_follows_the_links_position(setup):
    tmp, path, journal, daemon = setup
    plugin = settlement_plugin(daemon)
    link = FakeLink(0, 5, "offline")
    plugin.attach(link)
    try:
        plugin.tick()                   # records waiting, link down: raised
        rec = plugin.machine.alerts[("sync_backlog", "device")]
        assert rec["state"] in ("pending", "firing") and rec["detail"]["backlog"] == 5
        link.pos = {"acked": 5, "next_seq": 5, "state": "online"}
        plugin.tick()                   # drained: cleared (a pending one is dropped)
        rec = plugin.machine.alerts.get(("sync_backlog", "device"))
        assert rec is None or rec["state"] not in ("pending", "firing")
    finally:
        plugin.stop()
