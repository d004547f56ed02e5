"""SQLite under the backend store: a file path, WAL, synchronous=FULL.

Several backend processes may share one file: every write transaction
starts with BEGIN IMMEDIATE, which takes SQLite's single write lock up
front (a deferred transaction that upgrades later can fail with SQLITE_BUSY
instead of waiting), and busy_timeout makes the others wait for it.
synchronous=FULL in WAL mode fsyncs the WAL on every commit, so a commit
that returned survives power loss; only then does the backend ack.
"""

import contextlib
import os
import sqlite3

from daozhang.agent.core.errors import StorageError
from daozhang.backend import schema

BUSY_TIMEOUT_MS = 60000


class SqliteTx:
    """The statements of one transaction.  SQL is written with %s
    placeholders (the PostgreSQL spelling) and translated here."""

    def __init__(self, conn):
        self._conn = conn

    def execute(self, sql, params=()):
        return self._conn.execute(sql.replace("%s", "?"), params)

    def executemany(self, sql, rows):
        self._conn.executemany(sql.replace("%s", "?"), rows)

    def all(self, sql, params=()):
        return self.execute(sql, params).fetchall()

    def one(self, sql, params=()):
        return self.execute(sql, params).fetchone()

    def lock_device(self, device_id):
        """BEGIN IMMEDIATE already holds the database's write lock."""


class SqliteDatabase:
    dialect = "sqlite"

    def __init__(self, path):
        self.path = path
        self.url = path
        if path != ":memory:":
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                raise StorageError("database directory %s does not exist (for %s)"
                                   % (directory, path))
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves.
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                         timeout=BUSY_TIMEOUT_MS / 1000.0)
            self._conn.execute("PRAGMA busy_timeout = %d" % BUSY_TIMEOUT_MS)
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if path != ":memory:" and mode.lower() != "wal":
                raise StorageError("%s: journal_mode is %s, expected wal" % (path, mode))
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise StorageError("cannot open SQLite database %s: %s" % (path, exc))

    @contextlib.contextmanager
    def transaction(self):
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StorageError("SQLite %s: cannot begin a write transaction: %s" % (self.path, exc))
        try:
            yield SqliteTx(self._conn)
        except sqlite3.Error as exc:
            self._rollback()
            raise StorageError("SQLite %s: %s" % (self.path, exc))
        except BaseException:
            self._rollback()
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StorageError("SQLite %s: commit failed: %s" % (self.path, exc))

    @contextlib.contextmanager
    def read(self):
        """A consistent read: one deferred transaction (a WAL snapshot)."""
        try:
            self._conn.execute("BEGIN")
            try:
                yield SqliteTx(self._conn)
            finally:
                self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError("SQLite %s: %s" % (self.path, exc))

    def _rollback(self):
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # already rolled back by SQLite itself (e.g. on SQLITE_FULL)

    def create_schema(self):
        with self.transaction() as tx:
            for statement in schema.statements("sqlite"):
                tx.execute(statement)

    def ensure_partitions(self, now_ms):
        """SQLite's records table is not partitioned (PostgreSQL's is)."""

    def close(self):
        self._conn.close()
