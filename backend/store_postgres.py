"""PostgreSQL under the backend store (psycopg 3), for several backend hosts.

Concurrency: store_batch first locks the device's registry row
(SELECT ... FOR UPDATE), so batches of one device are stored one after
another whichever worker got them, while other devices proceed in
parallel.  Inserts still say ON CONFLICT DO NOTHING: the lock makes the
read-then-insert exact, the clause makes a bug there harmless.
Commits are durable with PostgreSQL's defaults (synchronous_commit on).

Group commit (`group()`, used by backend/group_commit.py): the worker
stores every device of a drained group of messages in ONE transaction,
one commit and one WAL flush for the group instead of two per device.
Inside it each store call is a nested transaction (a SAVEPOINT), so a
device whose batch fails is rolled back alone, exactly as its own
transaction was; the store's statements and locks are unchanged, so the
exactly-once rules are the same.  Reads inside a group run in the group's
transaction (they see its own uncommitted writes, as they must).
"""

import contextlib

import time

from daozhang.agent.core.errors import StorageError
from daozhang.backend import schema
from daozhang.backend.partitions import RecordPartitions

# Any constant: serialises CREATE TABLE IF NOT EXISTS between processes
# starting together (it is not atomic against a concurrent create).
_SCHEMA_LOCK = 0x64617A68


def _psycopg():
    try:
        import psycopg
    except ImportError as exc:  # an install without the [postgres] bits
        raise StorageError("PostgreSQL needs psycopg 3: pip install 'psycopg[binary]' (%s)" % exc)
    return psycopg


class PostgresTx:
    def __init__(self, cursor):
        self._cur = cursor

    def execute(self, sql, params=()):
        self._cur.execute(sql, params)
        return self._cur

    def executemany(self, sql, rows):
        if rows:
            self._cur.executemany(sql, rows)

    def insert_columns(self, sql, rows):
        """`sql` ends in "SELECT * FROM unnest(%b::type[], ...)": the rows go
        as one array per column, so the statement text and its parameter
        count are the same for 1 or 100 rows (psycopg parses it once, the
        server prepares it once) instead of 8 parameters per row."""
        if rows:
            self._cur.execute(sql, [list(column) for column in zip(*rows)])

    def all(self, sql, params=()):
        self._cur.execute(sql, params)
        return self._cur.fetchall()

    def one(self, sql, params=()):
        self._cur.execute(sql, params)
        return self._cur.fetchone()

    def lock_device(self, device_id):
        self._cur.execute("SELECT device_id FROM devices WHERE device_id = %s FOR UPDATE",
                          (device_id,))


def _redact(url):
    """The URL without a password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return "%s://%s@%s" % (scheme, user, host)
    return url


class PostgresDatabase:
    dialect = "postgres"

    def __init__(self, url):
        self.url = _redact(url)
        self._dsn = url
        self._psycopg = _psycopg()
        self._errors = self._psycopg.Error
        self._conn = None
        self._grouped = False
        self._partitions = RecordPartitions()
        self._connect()

    def _connect(self):
        try:
            self._conn = self._psycopg.connect(self._dsn, autocommit=True)
            # psycopg prepares a statement after a few runs; a generic plan
            # made while `records` was nearly empty is a sequential scan and
            # stays one (seen: 20x slower at 100k records).  Plan each run.
            self._conn.execute("SET plan_cache_mode = force_custom_plan")
        except self._psycopg.Error as exc:
            raise StorageError("cannot connect to PostgreSQL %s: %s"
                               % (self.url, (str(exc).strip().splitlines() or ["?"])[0]))

    def _connection(self):
        """The connection, made anew if the last one broke (a server restart,
        an idle timeout): the call that saw it break failed with
        StorageError, and nothing of its transaction was committed; the next
        call works again."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._connect()
        return self._conn

    def _storage_error(self, exc):
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return StorageError("PostgreSQL %s: %s" % (self.url, first))

    @contextlib.contextmanager
    def transaction(self):
        conn = self._connection()
        try:
            with conn.transaction():
                with conn.cursor() as cur:
                    yield PostgresTx(cur)
        except self._errors as exc:
            raise self._storage_error(exc)

    @contextlib.contextmanager
    def read(self):
        # REPEATABLE READ: every statement of the read sees one snapshot
        # (inside a group: the group's transaction, its writes included).
        conn = self._connection()
        try:
            with conn.transaction():
                with conn.cursor() as cur:
                    if not self._grouped:
                        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    yield PostgresTx(cur)
        except self._errors as exc:
            raise self._storage_error(exc)

    @contextlib.contextmanager
    def group(self):
        """One outer transaction: transaction() and read() inside it are
        savepoints of it; everything commits (durably) when it exits."""
        if self._grouped:
            raise StorageError("PostgreSQL %s: group() is not reentrant" % self.url)
        conn = self._connection()
        try:
            # Not pipeline mode: the store reads cursor.rowcount right after
            # an INSERT (record_ack), which a pipeline only knows at its sync.
            with conn.transaction():
                self._grouped = True
                try:
                    yield
                finally:
                    self._grouped = False
        except self._errors as exc:
            raise self._storage_error(exc)

    def create_schema(self):
        with self.transaction() as tx:
            tx.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in schema.statements("postgres"):
                tx.execute(statement)
        self.ensure_partitions(int(time.time() * 1000))

    def ensure_partitions(self, now_ms):
        """The records partitions for now_ms's month and the next ones exist
        (backend/partitions.py).  Called before a store_batch or a group
        opens its transaction; inside a group a missing month fails the
        group (nothing committed, redelivered) rather than wait on itself."""
        if self._partitions.covered(now_ms):
            return
        if self._grouped:
            raise StorageError("PostgreSQL %s: no records partition for the month of %d yet "
                               "(made before the next group)" % (self.url, now_ms))
        try:
            self._partitions.ensure(self._connection(), now_ms)
        except self._errors as exc:
            raise self._storage_error(exc)

    def close(self):
        if self._conn is not None:
            self._conn.close()
