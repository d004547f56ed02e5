"""`daozhang sim --processes P` and `--hold-backlog`.

Invariants: the slices cover every terminal once; a held terminal sends
nothing of its backlog before release() and all of it after; a fleet split
over 2 processes against the real broker and backend reports the sums of
its processes, every acked record stored exactly once, and the drain
counted from the release of the held backlogs.
"""

import pytest

from daozhang.backend.ack import AckSigner
from daozhang.backend.service import Ingestor
from daozhang.backend.store import open_store
from daozhang.fleet.identities import ensure_identities
from daozhang.fleet.sim_processes import slices
from daozhang.fleet.terminal import SimTerminal
from daozhang.host_tools.pki import ca as pki
from dztest.fleet_world import FleetWorld
from dztest.pg import postgres_url  # noqa: F401 (fixture)
from dztest.sync import signer

NOW = 1_900_000_000_000


def test_slices_cover_every_terminal_once():
    for total, processes in ((10, 3), (2, 4), (10000, 2), (7, 1)):
        parts = slices(total, processes)
        seen = [i for first, count in parts for i in range(first, first + count)]
        assert seen == list(range(total))
        assert max(c for _, c in parts) - min(c for _, c in parts) <= 1


def test_held_backlog_goes_up_only_after_release(tmp_path):
    ca = str(tmp_path / "ca")
    pki.create_ca(ca)
    (ident,), _ = ensure_identities(ca, str(tmp_path / "cache"), 1, "hold")
    store = open_store(str(tmp_path / "backend.db"))
    store.add_device(ident.device_id, ident.public_bytes())
    backend = AckSigner(signer(9))
    ingestor = Ingestor(store, backend, clock=lambda: NOW)
    t = SimTerminal(ident, backend.public_bytes, 30, 10, hold=True)

    def pump(out):
        sent = 0
        while out:
            more = []
            for action in out:
                if action[0] == "connect":
                    more += t.connected(NOW)
                elif action[0] == "publish":
                    if action[3] is not None:
                        more += t.puback(action[3], NOW)
                    if action[1] == "receipts":
                        sent += 1
                        ack = ingestor.receipts(t.device_id, action[2])
                        if ack is not None:
                            more += t.down_message("acks", ack, NOW)
            out = more + t.step(NOW)
        return sent

    assert pump(t.step(NOW)) == 0                      # online, backlog held
    assert store.stats()["records"] == 0 and not t.drained
    t.release()
    assert pump(t.step(NOW)) >= 1
    assert t.drained and store.stats()["records"] == t.journal.ring.next_seq == t.records_acked


@pytest.mark.mqtt
@pytest.mark.postgres
def test_two_processes_sum_and_store_exactly_once(tmp_path, tls_broker, postgres_url):
    from daozhang.fleet.sim import run_sim

    world = FleetWorld(tmp_path, tls_broker, postgres_url)
    try:
        world.start_backend(workers=1)
        settings = world.sim_settings(30, rate=0, duration=0, backlog=10, drain_timeout=3600,
                                      stall_timeout=120, processes=2, hold_backlog=True)
        report = run_sim(settings)
        print(report)
        assert report["processes"] == 2 and report["terminals"] == 30
        assert report["drained"] and report["terminals_drained"] == 30
        assert report["connects"] >= 30 and report["sales"] == 300
        assert 0 <= report["released_s"] <= report["elapsed_s"]
        assert report["drain_s"] <= report["elapsed_s"]
        counts = world.db_counts()
        assert counts["findings"] == []
        assert counts["records"] == counts["distinct"] == report["records_acked"]
        assert counts["acked_to"] == report["records_acked"]
    finally:
        world.close()
