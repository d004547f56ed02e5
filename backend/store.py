"""The backend's storage: devices, journal records, findings, alerts, acks,
settlements (docs/SPEC.md §10).

    store = open_store("backend.db")                 # SQLite file (default)
    store = open_store("postgresql://postgres@127.0.0.1/daozhang")
    store.add_device("dev-a", public_key_bytes)
    result = store.store_batch("dev-a", [record, ...])  # one transaction
    result.new, result.duplicate, result.forked, result.contiguous_seq

What the store guarantees, whichever database and however many backend
processes share it:
- a record is stored once per (device, seq); the first stored wins;
- the same record again (same hash) is a no-op; a different one for a
  stored seq is a fork: a finding with the offered frame as evidence, never
  stored over the original;
- a batch commits all or nothing, durably, before store_batch returns
  (the backend acks only after that);
- `contiguous_seq` / `head_hash` advance only over an unbroken run from the
  device's first_seq in which each record's prev_hash is the previous
  record's hash: the backend never acks past a gap or a chain break.
What it does not do: decode frames or check signatures (the sync core does,
before it calls store_batch).
How a record is checked and becomes a row, and rows come back as dicts:
backend/store_rows.py.

Not thread-safe per se; one Store serialises its own calls with a lock, so a
paho callback thread and a main thread may share it.
"""

import hashlib
import json
import threading
import time

from daozhang.agent.core.errors import LocalError
from daozhang.backend.store_rows import (
    ALERT_COLUMNS, DEVICE_COLUMNS, FINDING_COLUMNS, RECORD_COLUMNS, SETTLEMENT_COLUMNS, BatchResult,
    as_dicts, bytes_or_none, fork_detail, insert_records, json_text, normalise_record)

# Journal record types counted as "receipts" (docs/SPEC.md §3.5:
# type 1 is the transaction record; sale, refund, void, ... are its `kind`).
# A constant here so the store needs no journal import; pass
# transaction_types= to open_store to count others.
TRANSACTION_TYPES = frozenset({1})

# Journal sequence numbers start at 0 (docs/SPEC.md §3.4); contiguity
# is counted from a device's first_seq, this unless add_device says otherwise.
FIRST_SEQ = 0

# Finding kinds the store itself records.
FINDING_FORK = "fork"
FINDING_CHAIN_BREAK = "chain_break"

_WALK_PAGE = 1000


class UnknownDevice(LocalError):
    """A call named a device that is not in the registry."""


class DeviceKeyConflict(LocalError):
    """add_device for a registered device with another key (without replace)."""


def default_key_id(public_key):
    """First 8 bytes of SHA-256 of the raw public key (when none is given)."""
    return hashlib.sha256(bytes(public_key)).digest()[:8]


class Store:
    def __init__(self, database, transaction_types=TRANSACTION_TYPES, clock=None):
        self.db = database
        self.url = database.url
        self.dialect = database.dialect
        self.transaction_types = tuple(sorted(int(t) for t in transaction_types))
        if not self.transaction_types:
            raise LocalError("transaction_types: expected at least one record type")
        self._clock = clock or (lambda: int(time.time() * 1000))
        self._lock = threading.RLock()

    def close(self):
        with self._lock:
            self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _now(self):
        return int(self._clock())

    def _type_filter(self):
        return "type IN (%s)" % ", ".join(str(t) for t in self.transaction_types)

    # -- devices ----------------------------------------------------------------

    def add_device(self, device_id, public_key, key_id=None, first_seq=FIRST_SEQ, replace=False):
        """Register a device; True if new.  The same key again is a no-op; another
        key is refused unless replace=True (a key rotation the operator chose)."""
        public_key = bytes(public_key)
        key_id = bytes(key_id) if key_id is not None else default_key_id(public_key)
        if not isinstance(first_seq, int) or first_seq < 0:
            raise LocalError("first_seq %r: expected an integer >= 0" % (first_seq,))
        with self._lock, self.db.transaction() as tx:
            cur = tx.execute("INSERT INTO devices (device_id, public_key, key_id, added_at, "
                             "first_seq) VALUES (%s, %s, %s, %s, %s) "
                             "ON CONFLICT (device_id) DO NOTHING",
                             (device_id, public_key, key_id, self._now(), first_seq))
            if cur.rowcount == 1:
                return True
            tx.lock_device(device_id)
            row = tx.one("SELECT public_key, key_id FROM devices WHERE device_id = %s",
                         (device_id,))
            if bytes(row[0]) == public_key and bytes(row[1]) == key_id:
                return False
            if not replace:
                raise DeviceKeyConflict("device %s is registered with key id %s, not %s: "
                                        "pass replace=True (--replace) to rotate its key"
                                        % (device_id, bytes(row[1]).hex(), key_id.hex()))
            tx.execute("UPDATE devices SET public_key = %s, key_id = %s WHERE device_id = %s",
                       (public_key, key_id, device_id))
            return False

    def rotate_device_key(self, device_id, old_key_id, public_key, key_id):
        """Follow a key rotation the device journaled and vouched for (SPEC
        3.8): swap the registered key if it is still `old_key_id` (another
        worker may have followed it first).  True if this call swapped it."""
        with self._lock, self.db.transaction() as tx:
            tx.lock_device(device_id)
            cur = tx.execute("UPDATE devices SET public_key = %s, key_id = %s "
                             "WHERE device_id = %s AND key_id = %s",
                             (bytes(public_key), bytes(key_id), device_id, bytes(old_key_id)))
            return cur.rowcount == 1

    def newest_record_of_type(self, device_id, rtype, after_seq=None, oldest=False):
        """(seq, payload) of the device's newest record of `rtype` (the oldest
        one after `after_seq` with oldest=True), or None."""
        where, params = "device_id = %s AND type = %s", [device_id, rtype]
        if after_seq is not None:
            where += " AND seq > %s"
            params.append(after_seq)
        with self._lock, self.db.read() as tx:
            row = tx.one("SELECT seq, payload FROM records WHERE %s ORDER BY seq %s LIMIT 1"
                         % (where, "ASC" if oldest else "DESC"), tuple(params))
        if row is None:
            return None
        payload = json.loads(row[1]) if isinstance(row[1], str) else row[1]
        return row[0], payload

    def device(self, device_id):
        """The registry row as a dict, or None."""
        with self._lock, self.db.read() as tx:
            rows = tx.all("SELECT %s FROM devices WHERE device_id = %%s"
                          % ", ".join(DEVICE_COLUMNS), (device_id,))
        found = as_dicts(DEVICE_COLUMNS, rows, bytes_columns=("public_key", "key_id", "head_hash"))
        return found[0] if found else None

    def devices(self):
        with self._lock, self.db.read() as tx:
            rows = tx.all("SELECT %s FROM devices ORDER BY device_id" % ", ".join(DEVICE_COLUMNS))
        return as_dicts(DEVICE_COLUMNS, rows, bytes_columns=("public_key", "key_id", "head_hash"))

    # -- records ----------------------------------------------------------------

    def store_batch(self, device_id, records):
        """Store records of one device in ONE transaction, idempotently.

        Each record: a dict with seq, type, hash (32 bytes), prev_hash (32
        bytes or None), frame (bytes), payload (JSON text, or a JSON-able
        value); or a tuple in that order.  Returns a BatchResult; forks are
        recorded as findings in the same transaction.
        """
        normalised = [normalise_record(r, i) for i, r in enumerate(records)]
        now = self._now()
        self.db.ensure_partitions(now)     # PostgreSQL: before the transaction (backend/partitions.py)
        with self._lock, self.db.transaction() as tx:
            tx.lock_device(device_id)
            progress = tx.one("SELECT first_seq, contiguous_seq, head_hash FROM devices "
                              "WHERE device_id = %s", (device_id,))
            if progress is None:
                raise UnknownDevice("device %s is not registered: add it with its public key "
                                    "first (daozhang backend device add)" % device_id)
            first_seq, contiguous, head = progress[0], progress[1], bytes_or_none(progress[2])
            stored = self._stored_hashes(tx, device_id, sorted({r[0] for r in normalised}))
            new, duplicate, forked, rows, findings = [], [], [], [], []
            for seq, rtype, rhash, prev_hash, frame, payload in normalised:
                if seq not in stored:
                    stored[seq] = rhash
                    new.append(seq)
                    rows.append((device_id, seq, rtype, rhash, prev_hash, frame, payload, now))
                elif stored[seq] == rhash:
                    duplicate.append(seq)
                else:
                    forked.append(seq)
                    findings.append((device_id, seq, FINDING_FORK,
                                     fork_detail(seq, stored[seq], rhash), frame,
                                     "fork:%s:%d:%s" % (device_id, seq, rhash.hex()), now))
            self._insert_records(tx, rows)
            self._insert_findings(tx, findings)
            contiguous, head = self._advance(tx, device_id, first_seq, contiguous, head, now)
        return BatchResult(new, duplicate, forked, contiguous, head)

    def _insert_records(self, tx, rows):
        insert_records(tx, rows)

    def _stored_hashes(self, tx, device_id, seqs):
        stored = {}
        for start in range(0, len(seqs), 500):
            chunk = seqs[start:start + 500]
            marks = ", ".join(["%s"] * len(chunk))
            for seq, rhash in tx.all("SELECT seq, hash FROM records WHERE device_id = %%s "
                                     "AND seq IN (%s)" % marks, [device_id] + chunk):
                stored[seq] = bytes(rhash)
        return stored

    def _insert_findings(self, tx, findings):
        tx.executemany("INSERT INTO findings (device_id, seq, kind, detail, evidence, dedup_key, "
                       "at) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                       "ON CONFLICT (dedup_key) DO NOTHING", findings)

    def _advance(self, tx, device_id, first_seq, contiguous, head, now):
        """Walk forward from the stored contiguous point while the next seq
        is there and links to the previous hash.  Amortised O(new records):
        a gap or a break stops the walk at its first row."""
        seq = first_seq - 1 if contiguous is None else contiguous
        start = seq
        while True:
            page = tx.all("SELECT seq, hash, prev_hash FROM records WHERE device_id = %s "
                          "AND seq > %s ORDER BY seq LIMIT %s", (device_id, seq, _WALK_PAGE))
            stopped = False
            for next_seq, rhash, prev_hash in page:
                if next_seq != seq + 1:
                    stopped = True
                    break
                prev_hash = bytes_or_none(prev_hash)
                if head is not None and prev_hash != head:
                    self._insert_findings(tx, [(
                        device_id, next_seq, FINDING_CHAIN_BREAK,
                        json.dumps({"seq": next_seq, "expected_prev_hash": head.hex(),
                                    "prev_hash": prev_hash.hex() if prev_hash else None},
                                   sort_keys=True),
                        None, "chain_break:%s:%d:%s" % (device_id, next_seq, head.hex()), now)])
                    stopped = True
                    break
                seq, head = next_seq, bytes(rhash)
            if stopped or len(page) < _WALK_PAGE:
                break
        if seq != start:
            tx.execute("UPDATE devices SET contiguous_seq = %s, head_hash = %s "
                       "WHERE device_id = %s", (seq, head, device_id))
        return (None, None) if seq < first_seq else (seq, head)

    def last_contiguous_seq(self, device_id):
        """The highest seq such that first_seq..seq are all stored and chained;
        None if first_seq itself is not stored yet."""
        found = self.head(device_id)
        return None if found is None else found[0]

    def head(self, device_id):
        """(contiguous_seq, head_hash), or None (nothing contiguous yet)."""
        row = self.device(device_id)
        if row is None:
            raise UnknownDevice("device %s is not registered" % device_id)
        if row["contiguous_seq"] is None:
            return None
        return row["contiguous_seq"], row["head_hash"]

    def records(self, device_id, from_seq=None, to_seq=None, limit=None, types=None):
        """Stored records of a device in seq order (dicts, payload parsed)."""
        where, params = ["device_id = %s"], [device_id]
        if from_seq is not None:
            where.append("seq >= %s")
            params.append(from_seq)
        if to_seq is not None:
            where.append("seq <= %s")
            params.append(to_seq)
        if types is not None:
            where.append("type IN (%s)" % ", ".join(str(int(t)) for t in types))
        sql = "SELECT %s FROM records WHERE %s ORDER BY seq" % (", ".join(RECORD_COLUMNS),
                                                                " AND ".join(where))
        if limit is not None:
            sql += " LIMIT %d" % int(limit)
        with self._lock, self.db.read() as tx:
            rows = tx.all(sql, params)
        return as_dicts(RECORD_COLUMNS, rows, json_columns=("payload",),
                     bytes_columns=("hash", "prev_hash", "frame"))

    def latest_record(self, device_id, types=None):
        """The device's stored record with the highest seq (among `types`, a
        set of type numbers, if given), as a dict; None if there is none."""
        where, params = "device_id = %s", [device_id]
        if types is not None:
            where += " AND type IN (%s)" % ", ".join(str(int(t)) for t in types)
        with self._lock, self.db.read() as tx:
            rows = tx.all("SELECT %s FROM records WHERE %s ORDER BY seq DESC LIMIT 1"
                          % (", ".join(RECORD_COLUMNS), where), params)
        found = as_dicts(RECORD_COLUMNS, rows, json_columns=("payload",),
                      bytes_columns=("hash", "prev_hash", "frame"))
        return found[0] if found else None

    def receipts(self, device_id, from_seq=None, limit=None):
        """The device's transaction records (type in transaction_types)."""
        return self.records(device_id, from_seq=from_seq, limit=limit,
                            types=self.transaction_types)

    # -- findings and alerts -------------------------------------------------------

    def add_finding(self, device_id, seq, kind, detail, evidence=None, dedup_key=None):
        """Record what the backend found wrong; True if stored (False: the
        same dedup_key was already there).  `detail`: text or a JSON-able value."""
        if not isinstance(detail, str):
            detail = json.dumps(detail, sort_keys=True, default=str)
        with self._lock, self.db.transaction() as tx:
            cur = tx.execute("INSERT INTO findings (device_id, seq, kind, detail, evidence, "
                             "dedup_key, at) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                             "ON CONFLICT (dedup_key) DO NOTHING",
                             (device_id, seq, kind, detail, bytes_or_none(evidence), dedup_key,
                              self._now()))
            return cur.rowcount == 1

    def findings(self, device_id=None, kind=None):
        where, params = [], []
        if device_id is not None:
            where.append("device_id = %s")
            params.append(device_id)
        if kind is not None:
            where.append("kind = %s")
            params.append(kind)
        sql = "SELECT %s FROM findings" % ", ".join(FINDING_COLUMNS)
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._lock, self.db.read() as tx:
            rows = tx.all(sql + " ORDER BY id", params)
        return as_dicts(FINDING_COLUMNS, rows, bytes_columns=("evidence",))

    def add_alert(self, device_id, seq, kind, state, severity, payload, device_at=None):
        """Store a device's alert; True if new (the same (device, seq, kind,
        state) again is a no-op: MQTT may deliver twice).  An alert without a
        seq is told apart by `device_at` (the device's time of the
        transition) through an indexed table, never by scanning the
        device's alerts."""
        return self.add_alerts(device_id, [(seq, kind, state, severity, payload, device_at)])[0]

    def add_alerts(self, device_id, alerts):
        """Many alerts of one device in one transaction (one message's worth):
        `alerts` is [(seq, kind, state, severity, payload, device_at)];
        returns, per alert, True if it was new."""
        rows = [(seq, kind, state, severity, json_text(payload, "alert payload"), device_at)
                for seq, kind, state, severity, payload, device_at in alerts]
        out = []
        with self._lock, self.db.transaction() as tx:
            now = self._now()
            for seq, kind, state, severity, payload, device_at in rows:
                if seq is None and device_at is not None:
                    cur = tx.execute("INSERT INTO alert_unjournaled (device_id, kind, state, "
                                     "device_at) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                                     (device_id, kind, state, device_at))
                    if cur.rowcount != 1:
                        out.append(False)
                        continue
                cur = tx.execute("INSERT INTO alerts (device_id, seq, kind, state, severity, "
                                 "payload, at) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                                 "ON CONFLICT (device_id, seq, kind, state) DO NOTHING",
                                 (device_id, seq, kind, state, severity, payload, now))
                out.append(cur.rowcount == 1)
        return out

    def alerts(self, device_id=None):
        return self._select("alerts", ALERT_COLUMNS, "device_id", device_id, ("payload",))

    def _select(self, table, columns, filter_column, value, json_columns):
        """All rows of `table` in insertion order, optionally where filter_column = value."""
        sql = "SELECT %s FROM %s" % (", ".join(columns), table)
        params = []
        if value is not None:
            sql += " WHERE %s = %%s" % filter_column
            params.append(value)
        with self._lock, self.db.read() as tx:
            rows = tx.all(sql + " ORDER BY id", params)
        return as_dicts(columns, rows, json_columns=json_columns)

    # -- acks -----------------------------------------------------------------------

    def record_ack(self, device_id, last_seq, head_hash):
        """Remember the ack sent to a device; only ever moves forward.
        True if this ack is newer than the one stored."""
        with self._lock, self.db.transaction() as tx:
            cur = tx.execute("INSERT INTO acks (device_id, last_seq, head_hash, at) "
                             "VALUES (%s, %s, %s, %s) ON CONFLICT (device_id) DO UPDATE SET "
                             "last_seq = excluded.last_seq, head_hash = excluded.head_hash, "
                             "at = excluded.at WHERE acks.last_seq < excluded.last_seq",
                             (device_id, last_seq, bytes(head_hash), self._now()))
            return cur.rowcount == 1

    def last_ack(self, device_id):
        """(last_seq, head_hash) of the newest ack sent, or None."""
        with self._lock, self.db.read() as tx:
            row = tx.one("SELECT last_seq, head_hash FROM acks WHERE device_id = %s",
                         (device_id,))
        return None if row is None else (row[0], bytes(row[1]))

    # -- settlements ------------------------------------------------------------------

    def add_settlement(self, acquirer_ref, row, status="unmatched"):
        """Store an acquirer's settlement row once per acquirer_ref; True if new."""
        row = json_text(row, "settlement row")
        with self._lock, self.db.transaction() as tx:
            cur = tx.execute("INSERT INTO settlements (acquirer_ref, row, status, at) "
                             "VALUES (%s, %s, %s, %s) ON CONFLICT (acquirer_ref) DO NOTHING",
                             (acquirer_ref, row, status, self._now()))
            return cur.rowcount == 1

    def match_settlement(self, acquirer_ref, device_id, seq, status):
        """Record which receipt a settlement row matched, and the verdict."""
        with self._lock, self.db.transaction() as tx:
            cur = tx.execute("UPDATE settlements SET device_id = %s, seq = %s, status = %s "
                             "WHERE acquirer_ref = %s", (device_id, seq, status, acquirer_ref))
            if cur.rowcount != 1:
                raise LocalError("no settlement row with acquirer_ref %r" % acquirer_ref)

    def settlements(self, status=None):
        return self._select("settlements", SETTLEMENT_COLUMNS, "status", status, ("row",))

    # -- totals ---------------------------------------------------------------------------

    def stats(self):
        """{"devices", "records", "receipts", "alerts", "findings"}: counts from
        one consistent snapshot.  receipts: records whose type is in
        transaction_types."""
        with self._lock, self.db.read() as tx:
            counts = tx.one(
                "SELECT (SELECT COUNT(*) FROM devices), (SELECT COUNT(*) FROM records), "
                "(SELECT COUNT(*) FROM records WHERE %s), (SELECT COUNT(*) FROM alerts), "
                "(SELECT COUNT(*) FROM findings)" % self._type_filter())
        return dict(zip(("devices", "records", "receipts", "alerts", "findings"),
                        (int(c) for c in counts)))


def _open_database(url_or_path):
    from daozhang.backend import store_postgres, store_sqlite

    target = str(url_or_path)
    if target.startswith(("postgresql://", "postgres://")):
        return store_postgres.PostgresDatabase(target)
    if target.startswith("sqlite://"):
        target = target[len("sqlite://"):]  # sqlite:///abs/path, sqlite://rel/path
        if not target:
            raise LocalError("database URL %r: expected sqlite:///PATH" % url_or_path)
        return store_sqlite.SqliteDatabase(target)
    if "://" in target:
        raise LocalError("database %r: expected a file path (SQLite), sqlite:///PATH or "
                         "postgresql://..." % url_or_path)
    return store_sqlite.SqliteDatabase(target)


def open_store(url_or_path, transaction_types=TRANSACTION_TYPES, clock=None):
    """A Store on a SQLite file path (or sqlite:///PATH) or a postgresql:// URL;
    creates the tables if missing.  `clock`: a function returning epoch ms."""
    database = _open_database(url_or_path)
    try:
        database.create_schema()
        _check_version(database)
    except BaseException:
        database.close()
        raise
    return Store(database, transaction_types=transaction_types, clock=clock)


def _check_version(database):
    from daozhang.agent.core.errors import StorageError
    from daozhang.backend.schema import SCHEMA_VERSION

    with database.transaction() as tx:
        tx.execute("INSERT INTO meta (key, value) VALUES ('schema_version', %s) "
                   "ON CONFLICT (key) DO NOTHING", (str(SCHEMA_VERSION),))
        found = int(tx.one("SELECT value FROM meta WHERE key = 'schema_version'")[0])
    if found != SCHEMA_VERSION:
        raise StorageError("database %s has schema version %d, this daozhang knows %d: "
                           "use a matching daozhang (or migrate)" % (database.url, found,
                                                                     SCHEMA_VERSION))
