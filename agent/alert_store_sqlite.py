"""The alert machine's records on disk (agent/core/settlement/alert_store.py's face),
in the settlement index's SQLite file beside the journal.

One row per alert (inactive alerts have none), with the two orders the
machine asks for as indexes: by next deadline per kind (a tick reads only
the rows due) and by `since` among firing alerts per kind (the oldest of a
group).  Writes join the index's open batch and commit with its cursor
(agent/index_db.py), so the table always equals the journal's alert
records up to that cursor, and a restart replays only what follows.
Derived: a missing or stale index file is rebuilt from the journal.
Memory: SQLite's bounded page cache and a row count; nothing per alert, so
an outage's 100,000 overdue alerts cost the daemon no RAM.

Keys are text in the daemon (pos_txn_id, acquirer_ref, "device", ...).
"""

import json

from daozhang.agent.core.settlement.alert_store import DictReads

_DUMPS = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode
SCHEMA = """
CREATE TABLE alert (kind TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL,
                    state TEXT NOT NULL, since INTEGER, notified INTEGER, due INTEGER,
                    PRIMARY KEY (kind, key));
CREATE INDEX alert_due ON alert (kind, due) WHERE due IS NOT NULL;
CREATE INDEX alert_oldest ON alert (kind, since, key) WHERE state = 'firing';
CREATE INDEX alert_notified ON alert (kind, notified) WHERE state = 'firing';
"""
_BATCH = 512   # rows fetched at a time when iterating


class SqliteAlertStore(DictReads):
    def __init__(self, db):
        self.db = db
        self._count = db.execute("SELECT COUNT(*) FROM alert").fetchone()[0]

    # -- the read side of a dict --------------------------------------------------

    def get(self, ident, default=None):
        row = self.db.execute("SELECT body FROM alert WHERE kind = ? AND key = ?",
                              (ident[0], str(ident[1]))).fetchone()
        return default if row is None else json.loads(row[0])

    def __contains__(self, ident):
        return self.db.execute("SELECT 1 FROM alert WHERE kind = ? AND key = ?",
                               (ident[0], str(ident[1]))).fetchone() is not None

    def __len__(self):
        return self._count

    def _rows(self, columns):
        """Every row in (kind, key) order, a batch at a time (flat memory)."""
        last = ("", "")
        while True:
            rows = self.db.execute(
                "SELECT kind, key, %s FROM alert WHERE (kind, key) > (?, ?) "
                "ORDER BY kind, key LIMIT %d" % (columns, _BATCH), last).fetchall()
            if not rows:
                return
            for row in rows:
                yield row
            last = (rows[-1][0], rows[-1][1])

    def __iter__(self):
        for kind, key, _ in self._rows("1"):
            yield (kind, key)

    def items(self):
        for kind, key, body in self._rows("body"):
            yield (kind, key), json.loads(body)

    # -- changes --------------------------------------------------------------------

    def put(self, ident, rec, due):
        args = (_DUMPS(rec), rec["state"], rec.get("since"), rec.get("last_notified"), due,
                ident[0], str(ident[1]))
        cur = self.db.write("UPDATE alert SET body = ?, state = ?, since = ?, notified = ?, "
                            "due = ? WHERE kind = ? AND key = ?", args)
        if cur.rowcount == 0:
            self.db.write("INSERT INTO alert (body, state, since, notified, due, kind, key) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)", args)
            self._count += 1

    def delete(self, ident):
        cur = self.db.write("DELETE FROM alert WHERE kind = ? AND key = ?",
                            (ident[0], str(ident[1])))
        self._count -= cur.rowcount

    # -- the orders -------------------------------------------------------------------

    def pop_due(self, now, kinds, limit=None):
        out = []
        for kind in kinds:
            if limit is not None and len(out) >= limit:
                break
            rows = self.db.execute("SELECT key FROM alert WHERE kind = ? AND due IS NOT NULL "
                                   "AND due <= ? ORDER BY due LIMIT ?",
                                   (kind, now, -1 if limit is None else limit - len(out))).fetchall()
            for (key,) in rows:
                self.db.write("UPDATE alert SET due = NULL WHERE kind = ? AND key = ?",
                              (kind, key))
                out.append((kind, key))
        out.sort()
        return out

    def has_due(self, ident):
        row = self.db.execute("SELECT due FROM alert WHERE kind = ? AND key = ?",
                              (ident[0], str(ident[1]))).fetchone()
        return row is not None and row[0] is not None

    def oldest_firing(self, kind):
        row = self.db.execute("SELECT since, key FROM alert WHERE kind = ? AND state = 'firing' "
                              "ORDER BY since, key LIMIT 1", (kind,)).fetchone()
        return None if row is None else (row[0], row[1])

    def latest_notified(self, kind):
        return self.db.execute("SELECT MAX(notified) FROM alert WHERE kind = ? AND "
                               "state = 'firing'", (kind,)).fetchone()[0]

    def close(self):
        pass
