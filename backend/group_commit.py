"""One commit per group of messages a worker drained, not two per device.

`handle_group(client, worker, log, messages, dispatch)` runs the service's own
_handle_group (the same checks, store calls, ack decisions) inside the
database's group() transaction (backend/store_postgres.py), with a client
stand-in that holds back every ack publish and PUBACK until the group has
committed.  So the rule "a message is PUBACKed, and its ack published, only
after its records are durable" holds exactly as before; if the commit
fails nothing is acknowledged and the broker redelivers the messages.

Devices are handled in sorted order so two workers' groups always lock
device rows in the same order (no deadlock).  A database without group()
(SQLite: one writer at a time anyway) takes the old path unchanged.
"""

from daozhang.agent.core.errors import StorageError
from daozhang.backend.key_registry import KeyRegistry


class _HeldClient:
    """Records publish()/ack() calls; flush() performs them on the real client."""

    def __init__(self):
        self.calls = []

    def publish(self, topic, payload, qos=0, retain=False):
        self.calls.append(("publish", topic, payload, qos))

    def ack(self, mid, qos):
        self.calls.append(("ack", mid, qos))

    def flush(self, client):
        # Acks first, then PUBACKs: a worker killed in between leaves the
        # messages unacknowledged, so they come again (stored once).
        for call in self.calls:
            if call[0] == "publish":
                client.publish(call[1], call[2], qos=call[3])
        for call in self.calls:
            if call[0] == "ack":
                client.ack(call[1], call[2])


def handle_group(client, worker, log, messages, dispatch):
    """`dispatch(client, worker, log, messages)`: the service's per-message
    handling (backend/service.py `_handle_group`), run inside one database
    transaction when the store can group; passed in, so neither module
    imports the other."""
    group = getattr(worker.store.db, "group", None)
    if group is None:
        return dispatch(client, worker, log, messages)
    held = _HeldClient()
    ordered = sorted(messages, key=lambda m: m.topic)   # stable: per-device order kept
    try:
        # The month's records partition exists before the group's transaction
        # holds inserts on the table (backend/partitions.py).
        worker.store.db.ensure_partitions(worker.store._now())
        with worker.store._lock, group():
            dispatch(held, worker, log, ordered)
    except StorageError as exc:
        # Nothing committed: no ack, no PUBACK; the broker redelivers.  The
        # key cache may hold a rotation that was not committed: reload it.
        worker.keys = KeyRegistry(worker.store, worker.log)
        log("group_store_failed", level="error", messages=len(messages), error=str(exc))
        return
    held.flush(client)
