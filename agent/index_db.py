"""A SQLite file derived from the journal, bound to it (docs/adr/0004-on-disk-sale-index.md).

The journal is the source of truth; an index file beside it only saves the
daemon from holding every retained transaction in memory and from replaying
the whole journal at every start.  Each index records the journal it was
built from (the superblock's journal_id) and a cursor: the seq up to which
every journal record is reflected in it.  At open, the owner replays the
records after the cursor; a file that is unreadable, of another schema
version, of another journal, or ahead of the journal is deleted and rebuilt
from the whole journal.

Writes are batched: the owner's changes stay in one open SQLite transaction
until checkpoint(cursor) commits them with the new cursor.  WAL mode with
synchronous=NORMAL: a power cut may lose the last commits (they are
replayed from the journal), never corrupt the file.  Nothing here is
durable on its own, and nothing needs to be.
"""

import os
import sqlite3

from daozhang.agent.core.errors import StorageError

CACHE_KIB = 256           # SQLite page cache per index file: bounded memory (docs/DESIGN.md "The daemon's memory")
BUSY_TIMEOUT_S = 0.5      # only one owner writes an index: waiting longer would not help


def index_path(journal, suffix):
    """The index file beside a journal file; None (in memory) when the
    journal is not a plain file (tests' fault-injecting storage)."""
    path = getattr(getattr(journal, "storage", None), "path", None)
    if not path or not os.path.isfile(path):
        return None
    return "%s.%s.sqlite" % (path, suffix)


def _remove(path):
    for name in (path, path + "-wal", path + "-shm"):
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass


class IndexDb:
    """One index file: its connection, its binding to a journal, its cursor.

    `cursor` after open: the last journal seq the file reflects, or None
    when it was (re)created empty and the whole journal must be replayed.
    Not thread-safe: the owner serialises calls with its own lock.
    """

    def __init__(self, path, journal, version, schema, log=None):
        self.path = path
        self.log = log or (lambda event, **fields: None)
        self.version = version
        self.schema = schema
        self.journal_id = bytes(journal.geo.journal_id).hex()
        self.rebuilt = None        # why the file was recreated, if it was
        self._in_txn = False
        self._open_bound(journal.ring.next_seq)
        self._claim()

    def _claim(self):
        """Take the write lock now: a file another live process (or another
        index object in this one, as tests do) holds open for writing is not
        ours to use; index in memory for this run instead."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self._in_txn = True
        except sqlite3.OperationalError as exc:
            self.log("index_busy", level="warning", path=self.path, error=str(exc))
            self.conn.close()
            self.path = None
            self.rebuilt = "busy: indexed in memory for this run"
            self._connect()
            self._create()
            self.cursor = None

    def _open_bound(self, next_seq):
        self.conn = None
        try:
            self._connect()
            why = self._mismatch(next_seq)
        except sqlite3.DatabaseError as exc:
            why = "unreadable (%s)" % exc
        if why is None:
            return
        self.rebuilt = why
        if self.conn is not None:
            self.conn.close()
        if self.path is not None:
            self.log("index_rebuilt", path=self.path, reason=why)
            _remove(self.path)
        try:
            self._connect()
            self._create()
        except sqlite3.Error as exc:
            raise StorageError("cannot create index %s: %s" % (self.path, exc)) from None
        self.cursor = None

    def _connect(self):
        self.conn = sqlite3.connect(self.path or ":memory:", isolation_level=None,
                                    check_same_thread=False, timeout=BUSY_TIMEOUT_S)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA cache_size=-%d" % CACHE_KIB)

    def _mismatch(self, next_seq):
        """Why this file cannot serve as the journal's index, or None."""
        has_meta = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if not has_meta:
            return "new"
        meta = dict(self.conn.execute("SELECT k, v FROM meta"))
        if meta.get("version") != self.version:
            return "schema version %r, expected %r" % (meta.get("version"), self.version)
        if meta.get("journal_id") != self.journal_id:
            return "built from journal %s, not %s" % (meta.get("journal_id"), self.journal_id)
        cursor = meta.get("cursor")
        if cursor is not None and cursor >= next_seq:
            return "cursor %d is ahead of the journal (next seq %d)" % (cursor, next_seq)
        self.cursor = cursor
        return None

    def _create(self):
        self.conn.executescript("BEGIN;\n" + self.schema
                                + "\nCREATE TABLE meta (k TEXT PRIMARY KEY, v);\nCOMMIT;")
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO meta VALUES (?, ?)",
                              [("version", self.version), ("journal_id", self.journal_id),
                               ("cursor", None)])
        self.conn.execute("COMMIT")

    # -- the owner's face -------------------------------------------------------

    def execute(self, sql, args=()):
        return self.conn.execute(sql, args)

    def write(self, sql, args=()):
        """A change, inside the open batch (opened on first use)."""
        if not self._in_txn:
            self.conn.execute("BEGIN")
            self._in_txn = True
        return self.conn.execute(sql, args)

    def write_many(self, sql, rows):
        """One statement over many rows, inside the open batch."""
        if not self._in_txn:
            self.conn.execute("BEGIN")
            self._in_txn = True
        return self.conn.executemany(sql, rows)

    def get_meta(self, key, default=None):
        row = self.conn.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, key, value):
        self.write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def checkpoint(self, cursor):
        """Commit the batch; every journal record up to seq `cursor` is in it."""
        if cursor is not None and (self.cursor is None or cursor > self.cursor):
            self.set_meta("cursor", cursor)
            self.cursor = cursor
        if self._in_txn:
            self.conn.execute("COMMIT")
            self._in_txn = False

    @property
    def dirty(self):
        return self._in_txn

    def close(self):
        if self.conn is None:
            return
        try:
            if self._in_txn:
                self.conn.execute("ROLLBACK")   # not at a known cursor: replayed at open
                self._in_txn = False
        finally:
            self.conn.close()
            self.conn = None
