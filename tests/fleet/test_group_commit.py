"""One PostgreSQL commit per group of messages (backend/group_commit.py).

Invariant: a message is PUBACKed, and its ack published, only after the
group's commit made its records durable (seen from another connection);
a device whose store call fails inside the group is rolled back alone,
is not acknowledged, and the other devices' records and acks stand.
"""

import pytest

from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.backend.ack import AckSigner
from daozhang.backend.group_commit import handle_group
from daozhang.backend.service import _handle_group
from daozhang.backend.service import Ingestor
from daozhang.backend.store import open_store
from daozhang.fleet.identities import ensure_identities
from daozhang.fleet.terminal import SimTerminal
from daozhang.host_tools.pki import ca as pki
from dztest.pg import postgres_url  # noqa: F401 (fixture)
from dztest.sync import signer

pytestmark = pytest.mark.postgres


class Message:
    def __init__(self, topic, payload, mid):
        self.topic, self.payload, self.mid, self.qos = topic, payload, mid, 1


class Client:
    """Records what the worker does, and what another connection sees then."""

    def __init__(self, db):
        self.observer = open_store(db)
        self.calls = []

    def publish(self, topic, payload, qos=0):
        self.calls.append(("publish", topic.split("/")[2], self.observer.stats()["records"]))

    def ack(self, mid, qos):
        self.calls.append(("ack", mid, self.observer.stats()["records"]))


def _fleet(tmp_path, db, n=3, backlog=5, clock=None):
    ca = str(tmp_path / "ca")
    pki.create_ca(ca)
    identities, _ = ensure_identities(ca, str(tmp_path / "cache"), n, "grp")
    backend = AckSigner(signer(9))
    store = open_store(db, clock=clock)
    messages, sizes = [], {}
    for i, ident in enumerate(identities):
        store.add_device(ident.device_id, ident.public_bytes())
        t = SimTerminal(ident, backend.public_bytes, backlog, 10)
        records, end, _ = t.reader.read(0, 1 << 20)
        assert end == t.journal.ring.next_seq
        messages.append(Message("daozhang/v1/%s/receipts" % ident.device_id,
                                msgs.encode_receipts(ident.device_id, [r[2] for r in records]), 10 + i))
        sizes[ident.device_id] = end
    return store, Ingestor(store, backend), messages, sizes


def _log(event, level="info", **fields):
    _log.events.append(event)


def test_acks_and_pubacks_wait_for_the_group_commit(tmp_path, postgres_url):
    store, worker, messages, sizes = _fleet(tmp_path, postgres_url)
    client = Client(postgres_url)
    _log.events = []
    handle_group(client, worker, _log, list(reversed(messages)), _handle_group)
    total = sum(sizes.values())
    assert sorted(c[1] for c in client.calls if c[0] == "publish") == sorted(sizes)
    assert sorted(c[1] for c in client.calls if c[0] == "ack") == [10, 11, 12]
    # Every ack and PUBACK went out after all records were committed.
    assert {c[2] for c in client.calls} == {total}
    assert store.stats()["records"] == total


def test_a_failing_device_is_rolled_back_alone_and_not_acknowledged(tmp_path, postgres_url):
    store, worker, messages, sizes = _fleet(tmp_path, postgres_url)
    victim = messages[1].topic.split("/")[2]
    original = store.store_batch

    def store_batch(device_id, records):
        if device_id == victim:
            with store.db.transaction() as tx:      # a real PostgreSQL error in its savepoint
                tx.execute("INSERT INTO acks (device_id, last_seq, head_hash, at) "
                           "VALUES (%s, 0, %s, 0)", (device_id, b"x" * 32))
                tx.execute("SELECT 1 / 0")
        return original(device_id, records)

    store.store_batch = store_batch
    client = Client(postgres_url)
    _log.events = []
    handle_group(client, worker, _log, messages, _handle_group)
    assert "store_failed" in _log.events
    others = [d for d in sizes if d != victim]
    assert sorted(c[1] for c in client.calls if c[0] == "publish") == sorted(others)
    assert sorted(c[1] for c in client.calls if c[0] == "ack") == [10, 12]
    assert store.stats()["records"] == sum(sizes[d] for d in others)
    assert store.last_ack(victim) is None            # its savepoint's insert was rolled back
    # Redelivered later, it is stored and acknowledged like any other.
    store.store_batch = original
    handle_group(client, worker, _log, [messages[1]], _handle_group)
    assert client.calls[-1][:2] == ("ack", 11)
    assert store.stats()["records"] == sum(sizes.values())


def test_a_group_in_a_month_without_a_partition_yet(tmp_path, postgres_url):
    """The month's records partition is made before the group's transaction
    (inside it, the DDL would wait on the group's own inserts)."""
    import time
    import psycopg
    from daozhang.backend import partitions

    later = int(time.time() * 1000) + 500 * 86_400_000
    store, worker, messages, sizes = _fleet(tmp_path, postgres_url, clock=lambda: later)
    client = Client(postgres_url)
    _log.events = []
    handle_group(client, worker, _log, messages, _handle_group)
    assert sorted(c[1] for c in client.calls if c[0] == "ack") == [10, 11, 12]
    assert store.stats()["records"] == sum(sizes.values())
    with psycopg.connect(postgres_url) as conn:
        where = {r[0] for r in conn.execute("SELECT DISTINCT tableoid::regclass::text FROM records")}
    assert where == {partitions.partition_name(*partitions.month_of(later))}
