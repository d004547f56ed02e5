"""The settlement watchdog's sale index on disk: SQLite beside the journal.

The same face as agent/core/settlement/sale_index.py's MemorySaleIndex (the core's
tests hold both to the same answers), plus what the settlement plugin keeps
beside it: accepted settlement-ack ids (the replay guard), the alert
machine's records (their table belongs to agent/alert_store_sqlite.py) and
the clock state as of the cursor.  Derived from the
journal and rebuilt from it when missing or stale (agent/index_db.py,
docs/adr/0004-on-disk-sale-index.md).  Memory: SQLite's bounded page cache, and
nothing per sale.
"""

import contextlib
import json

from daozhang.agent.core.settlement.sale_index import since_ms
from daozhang.agent.alert_store_sqlite import SCHEMA as ALERT_SCHEMA
from daozhang.agent.index_db import IndexDb

VERSION = 2   # 2: the alert machine's records, one row each (agent/alert_store_sqlite.py)
SCHEMA = """
CREATE TABLE txn (
    n INTEGER PRIMARY KEY,              -- arrival order
    key TEXT NOT NULL UNIQUE,           -- pos_txn_id
    seq INTEGER, kind TEXT, time INTEGER, amount INTEGER, mode TEXT, deadline INTEGER,
    cancelled INTEGER NOT NULL,
    terminal_id TEXT, rrn TEXT, auth_code TEXT, card_type TEXT, original TEXT,
    settlements TEXT,                   -- JSON list of acquirer refs, NULL: none
    checks TEXT,                        -- JSON list of check names, NULL: none
    since INTEGER NOT NULL,             -- expiry counts from here (deadline, else time)
    settled INTEGER NOT NULL DEFAULT 0, -- a first settlement arrived
    watched INTEGER NOT NULL DEFAULT 0, -- a sale awaiting its money
    seen INTEGER NOT NULL DEFAULT 0     -- its overdue was observed (this run)
);
CREATE INDEX txn_rrn ON txn (terminal_id, rrn);
CREATE INDEX txn_auth ON txn (auth_code, amount);
CREATE INDEX txn_due ON txn (deadline, seq, key) WHERE watched = 1 AND seen = 0;
CREATE INDEX txn_seen ON txn (key) WHERE seen = 1;
CREATE INDEX txn_since ON txn (since);
CREATE INDEX txn_open ON txn (seq) WHERE settled = 0;
CREATE TABLE result (
    n INTEGER PRIMARY KEY, ref TEXT NOT NULL UNIQUE,
    txn_key TEXT,                       -- NULL: an unknown settlement
    settled_at INTEGER NOT NULL, body TEXT NOT NULL
);
CREATE INDEX result_unknown ON result (settled_at) WHERE txn_key IS NULL;
CREATE TABLE cancel (original TEXT PRIMARY KEY, key TEXT NOT NULL);
CREATE TABLE ack (id BLOB PRIMARY KEY, digest BLOB NOT NULL, at INTEGER NOT NULL);
CREATE INDEX ack_at ON ack (at);
""" + ALERT_SCHEMA

_COLUMNS = ("seq, kind, time, amount, mode, deadline, cancelled, terminal_id, rrn, auth_code, "
            "card_type, original, settlements, checks")
_INSERT = ("INSERT INTO txn (key, " + _COLUMNS + ", since, settled, watched) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_GET = "SELECT " + _COLUMNS + " FROM txn WHERE key = ?"
# judging(): keys per lookup statement, padded with NULL (which matches
# nothing), and new rows per INSERT: one statement text each, prepared once.
_LOOKUP_KEYS = 64
_PRESENT = "SELECT key FROM txn WHERE key IN (%s)" % ", ".join("?" * _LOOKUP_KEYS)
_CANCELLED = "SELECT original FROM cancel WHERE original IN (%s)" % ", ".join("?" * _LOOKUP_KEYS)
_INSERT_ROWS = 32
_INSERT_MANY = (_INSERT.split(" VALUES ")[0] + " VALUES "
                + ", ".join(["(" + ", ".join("?" * 18) + ")"] * _INSERT_ROWS))
_DUMPS = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


def _list(text):
    return () if text is None else json.loads(text)


def _text(items):
    return _DUMPS(list(items)) if items else None


class SqliteSaleIndex:
    def __init__(self, path, journal, log=None):
        self._db = IndexDb(path, journal, VERSION, SCHEMA, log)
        # Inside judging(): keys known absent from txn, originals known absent
        # from cancel, and the rows add() holds back (None outside).
        self._absent, self._uncancelled, self._held = set(), set(), None
        # Overdue observations are not journaled state: the first tick after
        # a start observes every overdue sale again (the alert machine treats
        # them as no-ops), exactly as a rebuild from the journal would.
        self.db.write("UPDATE txn SET seen = 0 WHERE seen = 1")

    @property
    def db(self):
        """The index file.  Every statement goes through here, ours and the
        plugin's, so the rows add() holds back inside judging() are written
        first and every statement sees them."""
        if self._held:
            rows, self._held = self._held, []
            self._insert(rows)
        return self._db

    def _insert(self, rows):
        full = len(rows) - len(rows) % _INSERT_ROWS
        for i in range(0, full, _INSERT_ROWS):
            args = []
            for row in rows[i:i + _INSERT_ROWS]:
                args.extend(row)
            self._db.write(_INSERT_MANY, args)
        if full < len(rows):
            self._db.write_many(_INSERT, rows[full:])

    @contextlib.contextmanager
    def judging(self, keys):
        """A context for judging a pass of transactions with these keys (the
        settlement plugin's drain; not part of the shared face, answers
        unchanged).  A burst's sales are all new, and each statement lets the
        GIL go to the intake's threads and then waits to take it back: per
        sale a get, a cancellation and an INSERT cost the settlement thread
        more than the Python around them.  So which of the keys the txn and
        cancel tables hold is found in two statements per _LOOKUP_KEYS keys,
        and get(key) and cancellation(key) answer None for the absent ones
        without a statement (add() and set_cancellation() of a key make it
        present again); new rows are held and inserted _INSERT_ROWS a
        statement, at the latest when the context ends.  Memory: the pass."""
        keys = list(set(keys))
        absent, uncancelled = set(keys), set(keys)
        for i in range(0, len(keys), _LOOKUP_KEYS):
            args = keys[i:i + _LOOKUP_KEYS]
            args += [None] * (_LOOKUP_KEYS - len(args))
            absent.difference_update(r[0] for r in self.db.execute(_PRESENT, args))
            uncancelled.difference_update(r[0] for r in self.db.execute(_CANCELLED, args))
        self._absent, self._uncancelled, self._held = absent, uncancelled, []
        try:
            yield
        finally:
            self._absent, self._uncancelled = set(), set()
            try:
                self.db                 # the rows still held: written now
            finally:
                self._held = None

    @property
    def cursor(self):
        return self.db.cursor

    def checkpoint(self, cursor):
        self.db.checkpoint(cursor)

    def close(self):
        self.db.close()

    # -- entries -------------------------------------------------------------

    def _entry(self, key, row):
        (seq, kind, time, amount, mode, deadline, cancelled, terminal_id, rrn, auth_code,
         card_type, original, settlements, checks) = row
        settlements = _list(settlements)
        return {"txn": (terminal_id, rrn, auth_code, amount, card_type, original),
                "pos_txn_id": key, "seq": seq, "kind": kind, "time": time, "amount": amount,
                "mode": mode, "deadline": deadline, "cancelled": bool(cancelled),
                "settlements": settlements,
                "first": self.result(settlements[0]) if settlements else None,
                "checks": _list(checks)}

    def get(self, key):
        if key in self._absent:
            return None
        row = self.db.execute(_GET, (key,)).fetchone()
        return None if row is None else self._entry(key, row)

    def _many(self, where, args):
        rows = self.db.execute("SELECT key, " + _COLUMNS + " FROM txn WHERE " + where
                               + " ORDER BY n", args).fetchall()
        return [self._entry(r[0], r[1:]) for r in rows]

    def add(self, entry, watched=False):
        # Watched as it goes in (the watchdog's new sales): one statement, not an
        # INSERT and then watch()'s UPDATE of the row and its txn_due entry.
        terminal_id, rrn, auth_code, _amount, card_type, original = entry["txn"]
        self._absent.discard(entry["pos_txn_id"])
        row = (
            entry["pos_txn_id"], entry["seq"], entry["kind"], entry["time"], entry["amount"],
            entry["mode"], entry["deadline"], int(entry["cancelled"]), terminal_id, rrn,
            auth_code, card_type, original, _text(entry["settlements"]),
            _text(entry["checks"]), since_ms(entry), int(entry["first"] is not None),
            int(bool(watched)))
        if self._held is not None:
            self._held.append(row)      # inside judging(): written with others
        else:
            self.db.write(_INSERT, row)

    def save(self, entry):
        self.db.write("UPDATE txn SET cancelled = ?, settlements = ?, checks = ?, settled = ? "
                      "WHERE key = ?",
                      (int(entry["cancelled"]), _text(entry["settlements"]),
                       _text(entry["checks"]), int(entry["first"] is not None),
                       entry["pos_txn_id"]))

    def by_rrn_of(self, terminal_id, rrn):
        return self._many("terminal_id IS ? AND rrn = ?", (terminal_id, rrn))

    def by_auth_of(self, auth_code, amount):
        return self._many("auth_code = ? AND amount = ?", (auth_code, amount))

    def keys(self):
        return [r[0] for r in self.db.execute("SELECT key FROM txn ORDER BY n")]

    def count(self):
        return self.db.execute("SELECT COUNT(*) FROM txn").fetchone()[0]

    # -- results -------------------------------------------------------------

    def result(self, ref):
        row = self.db.execute("SELECT body FROM result WHERE ref = ?", (ref,)).fetchone()
        return None if row is None else json.loads(row[0])

    def add_result(self, result, matched):
        self.db.write("INSERT INTO result (ref, txn_key, settled_at, body) VALUES (?, ?, ?, ?)",
                      (result["acquirer_ref"], result["pos_txn_id"] if matched else None,
                       result["settled_at"], _DUMPS(result)))

    def unknown_results(self):
        return [json.loads(r[0]) for r in self.db.execute(
            "SELECT body FROM result WHERE txn_key IS NULL ORDER BY n")]

    def cancellation(self, original):
        if original in self._uncancelled:
            return None
        row = self.db.execute("SELECT key FROM cancel WHERE original = ?", (original,)).fetchone()
        return None if row is None else row[0]

    def set_cancellation(self, original, key):
        self._uncancelled.discard(original)
        self.db.write("INSERT OR REPLACE INTO cancel VALUES (?, ?)", (original, key))

    def forget(self, keys, unknown_before=None):
        for key in keys:
            row = self.db.execute("SELECT settlements, original FROM txn WHERE key = ?",
                                  (key,)).fetchone()
            if row is None:
                continue
            for ref in _list(row[0]):
                self.db.write("DELETE FROM result WHERE ref = ?", (ref,))
            self.db.write("DELETE FROM cancel WHERE original IS ? AND key = ?", (row[1], key))
            self.db.write("DELETE FROM txn WHERE key = ?", (key,))
        if unknown_before is not None:
            self.db.write("DELETE FROM result WHERE txn_key IS NULL AND settled_at < ?",
                          (unknown_before,))

    # -- the watchdog's ------------------------------------------------------

    def watch(self, entry):
        self.db.write("UPDATE txn SET watched = 1 WHERE key = ? AND watched = 0",
                      (entry["pos_txn_id"],))

    def unwatch(self, key):
        cur = self.db.write("UPDATE txn SET watched = 0, seen = 0 WHERE key = ? AND watched = 1",
                            (key,))
        return cur.rowcount > 0

    def watched_deadline(self, key):
        row = self.db.execute("SELECT deadline FROM txn WHERE key = ? AND watched = 1",
                              (key,)).fetchone()
        return None if row is None else row[0]

    def due(self, now, limit):
        return [(d, s or 0, k, a) for d, s, k, a in self.db.execute(
            "SELECT deadline, seq, key, amount FROM txn WHERE watched = 1 AND seen = 0 "
            "AND deadline < ? ORDER BY deadline, seq, key LIMIT ?", (now, limit))]

    def mark_seen(self, key):
        self.db.write("UPDATE txn SET seen = 1 WHERE key = ?", (key,))

    def unsettled_keys(self):
        return [r[0] for r in self.db.execute("SELECT key FROM txn WHERE watched = 1 ORDER BY key")]

    def expired(self, before):
        return [r[0] for r in self.db.execute(
            "SELECT key FROM txn WHERE since < ? ORDER BY n", (before,))]

    def release_floor(self, trusted_now, expire_after):
        if trusted_now is None:
            row = self.db.execute("SELECT MIN(seq) FROM txn WHERE settled = 0").fetchone()
        else:
            row = self.db.execute("SELECT MIN(seq) FROM txn WHERE settled = 0 AND since >= ?",
                                  (trusted_now - expire_after,)).fetchone()
        return row[0]

    # -- the plugin's: replay guard, alert records, clock --------------------

    def ack_digest(self, ack_id):
        row = self.db.execute("SELECT digest FROM ack WHERE id = ?", (bytes(ack_id),)).fetchone()
        return None if row is None else bytes(row[0])

    def put_ack(self, ack_id, digest, at):
        self.db.write("INSERT OR IGNORE INTO ack VALUES (?, ?, ?)", (bytes(ack_id), digest, at))

    def forget_acks(self, before):
        """Ack ids older than the watch window: their replays are refused as stale."""
        self.db.write("DELETE FROM ack WHERE at < ?", (before,))

    def save_clock(self, trusted, last_trusted_now):
        self.db.set_meta("clock", _DUMPS([bool(trusted), last_trusted_now]))

    def load_clock(self):
        text = self.db.get_meta("clock")
        return (True, None) if text is None else tuple(json.loads(text))
