"""The intake's idempotency index on disk: pos_txn_id -> (content digest, seq).

A SQLite file beside the journal (agent/index_db.py), derived from its
transaction records; rows of records the journal has reclaimed are dropped
(idempotency reaches back as far as the journal's retained records, no
further).  It also keeps the newest wall time each boot journaled, which the
daemon's clock guard needs at start (a few rows, the newest boots only).
Not thread-safe: IntakeService serialises calls with its lock.
"""

from daozhang.agent.index_db import IndexDb

VERSION = 1
SCHEMA = """
CREATE TABLE ids (key TEXT PRIMARY KEY, seq INTEGER NOT NULL, digest BLOB NOT NULL)
    WITHOUT ROWID;
CREATE INDEX ids_seq ON ids (seq);
CREATE TABLE boots (boot_id BLOB PRIMARY KEY, wall INTEGER NOT NULL);
"""
BOOTS_KEPT = 16      # the newest boots' walls: more than any start needs
GET_MANY = 256       # ids a statement: far below SQLite's bound on parameters


class IntakeIndex:
    def __init__(self, path, journal, log=None):
        self.db = IndexDb(path, journal, VERSION, SCHEMA, log)
        self._walls = {}             # boot_id -> newest wall noted since the last commit

    @property
    def cursor(self):
        return self.db.cursor

    def get(self, pos_txn_id):
        """(digest, seq) of a retained transaction, or None."""
        row = self.db.execute("SELECT digest, seq FROM ids WHERE key = ?",
                              (pos_txn_id,)).fetchone()
        return None if row is None else (bytes(row[0]), row[1])

    def get_many(self, pos_txn_ids):
        """{pos_txn_id: (digest, seq)} of those retained: one statement per
        GET_MANY ids (the intake looks a whole batch up at once)."""
        found = {}
        ids = list(pos_txn_ids)
        for start in range(0, len(ids), GET_MANY):
            part = ids[start:start + GET_MANY]
            for key, digest, seq in self.db.execute(
                    "SELECT key, digest, seq FROM ids WHERE key IN (%s)" % ",".join("?" * len(part)),
                    part):
                found[key] = (bytes(digest), seq)
        return found

    def put(self, pos_txn_id, digest, seq):
        self.db.write("INSERT OR REPLACE INTO ids VALUES (?, ?, ?)", (pos_txn_id, seq, digest))

    def put_many(self, rows):
        """[(pos_txn_id, digest, seq)]: one commit's transactions in one statement."""
        self.db.write_many("INSERT OR REPLACE INTO ids VALUES (?, ?, ?)",
                           [(pid, seq, digest) for pid, digest, seq in rows])

    def note_wall(self, boot_id, wall_ms):
        boot_id = bytes(boot_id)
        if wall_ms > self._walls.get(boot_id, -1):
            self._walls[boot_id] = wall_ms

    def last_wall_before(self, own_boot_id):
        """Newest wall time journaled by any boot but `own_boot_id` (0: none)."""
        self._flush_walls()
        row = self.db.execute("SELECT MAX(wall) FROM boots WHERE boot_id != ?",
                              (bytes(own_boot_id or b""),)).fetchone()
        return row[0] or 0

    def _flush_walls(self):
        for boot_id, wall in self._walls.items():
            self.db.write("INSERT INTO boots VALUES (?, ?) ON CONFLICT (boot_id) DO UPDATE "
                          "SET wall = MAX(wall, excluded.wall)", (boot_id, wall))
        if self._walls:
            self.db.write("DELETE FROM boots WHERE boot_id NOT IN "
                          "(SELECT boot_id FROM boots ORDER BY wall DESC LIMIT ?)", (BOOTS_KEPT,))
        self._walls = {}

    def forget_before(self, seq):
        """Drop transactions the journal no longer holds (seq below its oldest)."""
        self.db.write("DELETE FROM ids WHERE seq < ?", (seq,))

    def checkpoint(self, cursor):
        self._flush_walls()
        self.db.checkpoint(cursor)

    def close(self):
        self.db.close()
