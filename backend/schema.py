"""The backend's tables, for SQLite and PostgreSQL (docs/SPEC.md §10).

One logical schema, two spellings: the differences are the column types
(BLOB/BYTEA, TEXT/JSONB, INTEGER/BIGINT), how an id column counts, and
PostgreSQL's records table partitioned by time (backend/partitions.py).
Every statement the store runs is the same text on both, so behaviour does
not drift between the default SQLite file and a shared PostgreSQL.

Times are integer milliseconds since the Unix epoch (UTC) in both, so a
value reads back identically whichever database holds it.
"""

SCHEMA_VERSION = 1

# {blob} bytes, {json} JSON text, {int} 64-bit integer, {id} an auto id.
_TABLES = """
CREATE TABLE IF NOT EXISTS meta (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);

-- The registry: who may send records, and how far each chain is stored.
CREATE TABLE IF NOT EXISTS devices (
    device_id       TEXT PRIMARY KEY,
    public_key      {blob} NOT NULL,
    key_id          {blob} NOT NULL,
    added_at        {int} NOT NULL,
    first_seq       {int} NOT NULL,
    contiguous_seq  {int},
    head_hash       {blob}
);

-- Every journal record exactly once per (device, seq); the first one stored
-- for a seq wins, a different one later is a fork finding, never stored over.
-- PostgreSQL: partitioned by month of received_at; (device, seq) once across
-- partitions through record_keys (backend/partitions.py).
CREATE TABLE IF NOT EXISTS records (
    device_id   TEXT NOT NULL REFERENCES devices (device_id),
    seq         {int} NOT NULL CHECK (seq >= 0),
    type        INTEGER NOT NULL,
    hash        {blob} NOT NULL CHECK ({length}(hash) = 32),
    prev_hash   {blob},
    frame       {blob} NOT NULL,
    payload     {json} NOT NULL,
    received_at {int} NOT NULL,
    PRIMARY KEY {records_key}
){records_partitioning};
CREATE INDEX IF NOT EXISTS records_by_type ON records (type, device_id, seq);

-- What the backend found wrong (forks, gaps, chain breaks, bad signatures).
-- dedup_key makes re-delivery of the same evidence a no-op; NULL never dedups.
CREATE TABLE IF NOT EXISTS findings (
    id          {id},
    device_id   TEXT NOT NULL,
    seq         {int},
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL,
    evidence    {blob},
    dedup_key   TEXT UNIQUE,
    at          {int} NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_by_device ON findings (device_id, seq);

-- Alerts sent by devices; the same alert delivered twice is stored once.
CREATE TABLE IF NOT EXISTS alerts (
    id          {id},
    device_id   TEXT NOT NULL,
    seq         {int},
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    severity    TEXT NOT NULL,
    payload     {json} NOT NULL,
    at          {int} NOT NULL,
    UNIQUE (device_id, seq, kind, state)
);
CREATE INDEX IF NOT EXISTS alerts_by_device ON alerts (device_id, id);
-- Alerts that came without a journal seq (the device's journal refused them)
-- are told apart by the device's time: one indexed row each, so a duplicate
-- check costs the same at 100,000 stored alerts as at 100.
CREATE TABLE IF NOT EXISTS alert_unjournaled (
    device_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    device_at   {int} NOT NULL,
    PRIMARY KEY (device_id, kind, state, device_at)
);

-- The last signed ack sent to each device (only ever moves forward).
CREATE TABLE IF NOT EXISTS acks (
    device_id   TEXT PRIMARY KEY,
    last_seq    {int} NOT NULL,
    head_hash   {blob} NOT NULL,
    at          {int} NOT NULL
);

-- Acquirer settlement rows and the receipt each was matched to.
CREATE TABLE IF NOT EXISTS settlements (
    id           {id},
    acquirer_ref TEXT NOT NULL UNIQUE,
    row          {json} NOT NULL,
    device_id    TEXT,
    seq          {int},
    status       TEXT NOT NULL,
    at           {int} NOT NULL
);

-- Settlement acks on their way to a terminal (SPEC 7.8.7): numbered per
-- device, the signed bytes kept, pending until the terminal's status says
-- it processed everything up to n (confirmed_at); sent_at paces re-sends.
CREATE TABLE IF NOT EXISTS settlement_outbox (
    device_id    TEXT NOT NULL,
    n            {int} NOT NULL,
    acquirer_ref TEXT NOT NULL,
    payload      {blob} NOT NULL,
    queued_at    {int} NOT NULL,
    sent_at      {int},
    confirmed_at {int},
    PRIMARY KEY (device_id, n)
);
CREATE INDEX IF NOT EXISTS settlement_outbox_pending
    ON settlement_outbox (device_id, n) WHERE confirmed_at IS NULL;
"""

_SPELLING = {
    "sqlite": {"blob": "BLOB", "json": "TEXT", "int": "INTEGER", "length": "length",
               "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
               "records_key": "(device_id, seq)", "records_partitioning": ""},
    "postgres": {"blob": "BYTEA", "json": "JSONB", "int": "BIGINT", "length": "octet_length",
                 "id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
                 # A partitioned table's keys must hold the partition key.
                 "records_key": "(device_id, seq, received_at)",
                 "records_partitioning": " PARTITION BY RANGE (received_at)"},
}


def statements(dialect):
    """The DDL for `dialect` ("sqlite" or "postgres"), one statement each."""
    text = _TABLES.format(**_SPELLING[dialect])
    # Comments first (they may contain ';'), then one statement per ';'.
    text = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
    out = [chunk.strip() for chunk in text.split(";") if chunk.strip()]
    if dialect == "postgres":
        from daozhang.backend import partitions
        out.extend(partitions.STATEMENTS)       # whole: a function body holds ';'
    return out
