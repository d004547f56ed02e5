"""The fleet's parts without a broker: identities, the simulated terminal
against a real Ingestor (in memory, SQLite store), the fleet view's queries,
and the PostgreSQL group commit.

Invariants: a cached identity is reused and never mixed with another CA's;
a simulated terminal's journal is the real thing (the backend verifies and
stores every record exactly once, a full ring refuses instead of dropping);
the overview's numbers are the store's; a group commit acknowledges a
message only after its records are committed, and a failing device
leaves the others' commits and acks intact.
"""

import os

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from daozhang.backend.ack import AckSigner
from daozhang.backend.service import Ingestor
from daozhang.backend.store import open_store
from daozhang.fleet.identities import FleetCacheError, ensure_identities
from daozhang.fleet.terminal import SimTerminal
from daozhang.host_tools.pki import ca as pki
from dztest.sync import signer

NOW = 1_900_000_000_000


@pytest.fixture
def ca_dir(tmp_path):
    pki.create_ca(str(tmp_path / "ca"))
    return str(tmp_path / "ca")


def test_identities_issued_once_cached_and_tied_to_their_ca(tmp_path, ca_dir):
    cache = str(tmp_path / "cache")
    ids, issued = ensure_identities(ca_dir, cache, 5, "shop")
    assert issued == 5 and [i.device_id for i in ids][:2] == ["shop-000000", "shop-000001"]
    again, issued = ensure_identities(ca_dir, cache, 7, "shop")
    assert issued == 2
    assert [i.seed for i in again[:5]] == [i.seed for i in ids]
    with open(again[6].tls_pem, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "shop-000006"
    assert oct(os.stat(again[6].tls_pem).st_mode & 0o777) == "0o600"
    ledger = [e for e in pki.issued(ca_dir) if e["cn"].startswith("shop-")]
    assert len(ledger) == 7 and {e["kind"] for e in ledger} == {"device"}
    pki.create_ca(str(tmp_path / "other"))
    with pytest.raises(FleetCacheError, match="another CA"):
        ensure_identities(str(tmp_path / "other"), cache, 1, "shop")


class Link:
    """A terminal and an Ingestor joined by lists (what the broker does)."""

    def __init__(self, terminal, ingestor):
        self.t = terminal
        self.ingestor = ingestor
        self.now = NOW

    def pump(self, out):
        while out:
            more = []
            for action in out:
                if action[0] == "connect":
                    more += self.t.connected(self.now)
                elif action[0] == "publish":
                    if action[3] is not None:
                        more += self.t.puback(action[3], self.now)
                    if action[1] == "receipts":
                        ack = self.ingestor.receipts(self.t.device_id, action[2])
                        if ack is not None:
                            more += self.t.down_message("acks", ack, self.now)
            out = more + self.t.step(self.now)

    def run(self):
        self.pump(self.t.step(self.now))


def _world(tmp_path, ca_dir, backlog=0, sales_room=200):
    (ident,), _ = ensure_identities(ca_dir, str(tmp_path / "cache"), 1, "sim")
    store = open_store(str(tmp_path / "backend.db"))
    store.add_device(ident.device_id, ident.public_bytes())
    backend = AckSigner(signer(9))
    terminal = SimTerminal(ident, backend.public_bytes, backlog, sales_room)
    return terminal, store, Ingestor(store, backend, clock=lambda: NOW)


def test_sim_terminal_journal_is_verified_and_stored_exactly_once(tmp_path, ca_dir):
    terminal, store, ingestor = _world(tmp_path, ca_dir, backlog=100)   # the storm bench size
    link = Link(terminal, ingestor)
    link.run()
    for i in range(300):            # more than the ring holds: acked records are released
        link.now += 1000
        assert terminal.sell(link.now)
        link.run()
    assert terminal.drained and terminal.sales_refused == 0 and terminal.rejects == 0
    next_seq = terminal.journal.ring.next_seq
    stats = store.stats()
    assert stats["records"] == next_seq == terminal.records_acked
    assert stats["receipts"] == 400 and stats["findings"] == 0
    assert store.last_ack(terminal.device_id)[0] == next_seq - 1
    assert len(terminal.lags_ms) == 300 and max(terminal.lags_ms) == 0   # in-memory link: no delay


def test_sim_terminal_refuses_sales_when_its_ring_is_full(tmp_path, ca_dir):
    terminal, store, ingestor = _world(tmp_path, ca_dir, sales_room=20)
    sold = sum(terminal.sell(NOW + i) for i in range(2000))     # never connected: nothing acked
    assert terminal.sales_refused == 2000 - sold > 0
    link = Link(terminal, ingestor)
    link.run()
    assert terminal.drained and store.stats()["receipts"] == sold   # every accepted sale arrives


def test_overview_numbers_come_from_the_store(tmp_path, ca_dir):
    from daozhang.backend.fleet_view.queries import FleetQueries

    terminal, store, ingestor = _world(tmp_path, ca_dir)
    link = Link(terminal, ingestor)
    link.run()
    for i in range(4):
        terminal.sell(NOW + i)
    link.run()
    store.add_device("never-seen", b"\x01" * 32)
    rows = store.receipts(terminal.device_id)
    first = rows[0]
    store.add_settlement("R1", {"amount": first["payload"]["amount"] - 5}, "new")
    store.match_settlement("R1", terminal.device_id, first["seq"], "sent")
    store.add_settlement("R2", {"acquirer": "lakala", "amount": 100}, "new")
    store.match_settlement("R2", None, None, "unrouted")
    store.add_alert(terminal.device_id, None, "settlement_overdue", "firing", "warning", {"at": 1})
    store.add_alert(terminal.device_id, None, "clock_untrusted", "firing", "critical", {"at": 1})
    store.add_alert(terminal.device_id, None, "clock_untrusted", "cleared", "critical", {"at": 2})
    statuses = {terminal.device_id: ("online", NOW, {"backlog": 3})}
    q = FleetQueries(store, silent_after_ms=60000, overdue_after_ms=0)
    o = q.overview(NOW + 10 ** 6, statuses)
    assert o["stats"] == store.stats()
    assert o["terminals"] == {"total": 2, "online": 1, "offline": 0, "unknown": 1, "silent": 1,
                              "silent_after_s": 60.0}
    assert o["silent_devices"] == [terminal.device_id]
    assert o["backlog"]["total"] == 3
    unsettled = [r for r in rows[1:]]
    assert o["overdue"]["count"] == len(unsettled) == 3
    assert o["overdue"]["total"] == sum(r["payload"]["amount"] for r in unsettled)
    assert list(o["overdue"]["by_acquirer"]) == [first["payload"]["acquirer"]]
    assert o["oldest_unsettled"]["seq"] == rows[1]["seq"]
    assert o["alerts_firing"]["by_kind"] == {"settlement_overdue": 1}
    expected = {"lakala": {"unmatched": 1, "short": 0}}
    expected.setdefault(first["payload"]["acquirer"], {"unmatched": 0, "short": 0})["short"] += 1
    assert o["discrepancies"] == expected
    t = q.terminal(terminal.device_id, NOW, statuses)
    assert t["last_checkpoint"]["signature_verified"] is True
    assert {r["status"]: r["count"] for r in t["reconciliation"]} == {"sent": 1, "unsettled": 3}
    assert q.terminal("nobody", NOW, statuses) is None
