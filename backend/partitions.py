"""Time partitions of the PostgreSQL `records` table (SPEC 10.1).

`records` is partitioned by RANGE on `received_at` (the backend's own clock,
epoch ms), one partition a calendar month (UTC), named records_pYYYYMM.
The backend creates them ahead: the month of `now` and MONTHS_AHEAD more,
checked once per month per process (a set lookup per batch otherwise), so
an insert never lacks its partition, even when the clock jumps.  Old
months can be detached and archived without touching the live months.

(device, seq) is still stored once across partitions, enforced by the
database: a partitioned table's unique keys must include the partition
key, so the primary key is (device_id, seq, received_at), and a BEFORE
INSERT trigger claims (device_id, seq) in the small unpartitioned
`record_keys` table first (ON CONFLICT DO NOTHING; a row whose key is
already claimed is skipped, as ON CONFLICT (device_id, seq) DO NOTHING
did).  The store's device lock + read of the stored hash remains what
tells a duplicate from a fork (backend/store.py store_batch).

DDL runs only where no transaction of this connection is open (before a
store_batch or a worker's group transaction): CREATE TABLE ... PARTITION OF
locks the parent, and a transaction holding inserts on it would wait on
itself.
"""

import datetime

MONTHS_AHEAD = 2
# Serialises partition creation between workers (a concurrent CREATE of the
# same partition would fail).  Any constant distinct from the schema lock.
_PARTITION_LOCK = 0x64617A70

TABLE_DDL = """
CREATE TABLE IF NOT EXISTS record_keys (
    device_id   TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (device_id, seq)
)"""

FUNCTION_DDL = """
CREATE OR REPLACE FUNCTION records_claim_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO record_keys (device_id, seq) VALUES (NEW.device_id, NEW.seq)
        ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN NULL;        -- (device_id, seq) is stored already, in some partition
    END IF;
    RETURN NEW;
END
$$"""

TRIGGER_DDL = """
CREATE OR REPLACE TRIGGER records_claim_key BEFORE INSERT ON records
    FOR EACH ROW EXECUTE FUNCTION records_claim_key()"""

STATEMENTS = (TABLE_DDL, FUNCTION_DDL, TRIGGER_DDL)


def month_of(now_ms):
    """(year, month) in UTC of an epoch-ms time."""
    t = datetime.datetime.fromtimestamp(now_ms / 1000, datetime.timezone.utc)
    return t.year, t.month


def next_month(year, month):
    return (year + 1, 1) if month == 12 else (year, month + 1)


def month_start_ms(year, month):
    return int(datetime.datetime(year, month, 1, tzinfo=datetime.timezone.utc).timestamp() * 1000)


def partition_name(year, month):
    return "records_p%04d%02d" % (year, month)


def months_from(now_ms, ahead=MONTHS_AHEAD):
    """The month of now_ms and `ahead` more."""
    months = [month_of(now_ms)]
    for _ in range(ahead):
        months.append(next_month(*months[-1]))
    return months


class RecordPartitions:
    """Which months' partitions this process knows exist; creates the rest."""

    def __init__(self):
        self.known = set()
        self.partitioned = None     # None: not asked yet; False: an older, unpartitioned table

    def covered(self, now_ms):
        return self.partitioned is False or month_of(now_ms) in self.known

    def ensure(self, conn, now_ms):
        """Create the partitions of now_ms's month and MONTHS_AHEAD more that
        are missing.  `conn`: a psycopg connection with no transaction open."""
        if self.covered(now_ms):
            return
        if self.partitioned is None:
            row = conn.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass('records')").fetchone()
            self.partitioned = row is not None and row[0] == "p"
            if not self.partitioned:
                return
        wanted = months_from(now_ms)
        existing = {row[0] for row in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass('records')")}
        missing = [m for m in wanted if partition_name(*m) not in existing]
        if missing:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
                for year, month in missing:
                    conn.execute("CREATE TABLE IF NOT EXISTS %s PARTITION OF records FOR VALUES "
                                 "FROM (%d) TO (%d)" % (partition_name(year, month), month_start_ms(year, month),
                                                       month_start_ms(*next_month(year, month))))
        self.known.update(wanted)
