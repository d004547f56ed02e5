"""PostgreSQL's records table partitioned by month (backend/partitions.py):
partitions made ahead by the backend, rows in their month, and (device, seq)
stored once across partitions, by the store and by the database itself.
On the real PostgreSQL, a fresh schema per test; times relative to now."""

import threading
import time

import psycopg
import pytest

from daozhang.backend import partitions
from daozhang.backend.store import open_store
from dztest.pg import postgres_url  # noqa: F401  (fixture)
from dztest.store_records import make_chain

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

DAY_MS = 86_400_000
NOW_MS = int(time.time() * 1000)


class Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


def where_rows_are(url, device="dev-a"):
    """{seq: partition name}."""
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT seq, tableoid::regclass::text FROM records WHERE device_id = %s",
                                 (device,)).fetchall())


def partition_names(url):
    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass('records')")}


def counts(url):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*), count(DISTINCT (device_id, seq)) FROM records").fetchone()


def month_name(ms):
    return partitions.partition_name(*partitions.month_of(ms))


@pytest.fixture
def clock():
    return Clock(NOW_MS)


@pytest.fixture
def store(postgres_url, clock):
    s = open_store(postgres_url, clock=clock)
    s.add_device("dev-a", b"\x01" * 32)
    yield s
    s.close()


def test_records_is_partitioned_with_months_made_ahead(store, postgres_url):
    with psycopg.connect(postgres_url) as conn:
        kind = conn.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass('records')").fetchone()[0]
    assert kind == "p"
    store.store_batch("dev-a", make_chain(3))
    wanted = {partitions.partition_name(*m) for m in partitions.months_from(NOW_MS)}
    assert len(wanted) == 1 + partitions.MONTHS_AHEAD and wanted <= partition_names(postgres_url)
    assert set(where_rows_are(postgres_url).values()) == {month_name(NOW_MS)}


def test_a_clock_far_ahead_gets_its_partition_before_the_insert(store, clock, postgres_url):
    clock.t = NOW_MS + 400 * DAY_MS
    result = store.store_batch("dev-a", make_chain(2))
    assert result.new == [0, 1]
    assert set(where_rows_are(postgres_url).values()) == {month_name(clock.t)}


def test_device_seq_once_across_partitions(store, clock, postgres_url):
    chain = make_chain(8)
    store.store_batch("dev-a", chain[:5])
    clock.t = NOW_MS + 62 * DAY_MS                        # two months on: another partition
    again = store.store_batch("dev-a", chain)
    assert (again.new, again.duplicate, again.forked) == ([5, 6, 7], [0, 1, 2, 3, 4], [])
    assert counts(postgres_url) == (8, 8)
    where = where_rows_are(postgres_url)
    assert {where[s] for s in range(5)} == {month_name(NOW_MS)}
    assert {where[s] for s in range(5, 8)} == {month_name(clock.t)}
    assert again.contiguous_seq == 7


def test_a_fork_in_a_later_partition_is_a_finding_never_stored(store, clock, postgres_url):
    chain = make_chain(4)
    store.store_batch("dev-a", chain)
    clock.t = NOW_MS + 62 * DAY_MS
    forked = make_chain(4, salt=b"x")
    result = store.store_batch("dev-a", forked[2:3])
    assert result.forked == [2]
    assert [f["kind"] for f in store.findings()] == ["fork"]
    assert store.records("dev-a", from_seq=2, to_seq=2)[0]["frame"] == chain[2]["frame"]
    assert counts(postgres_url) == (4, 4)


def test_the_database_itself_refuses_a_second_row_for_a_device_seq(store, postgres_url):
    """Past the store's lock-and-read (a bug, a hand-written INSERT): the
    record_keys trigger still keeps one row per (device, seq)."""
    chain = make_chain(3)
    store.store_batch("dev-a", chain)
    other_month = NOW_MS + 35 * DAY_MS
    store.db.ensure_partitions(other_month)
    with psycopg.connect(postgres_url) as conn:
        conn.execute("INSERT INTO records (device_id, seq, type, hash, prev_hash, frame, payload, "
                     "received_at) VALUES ('dev-a', 1, 1, %s, NULL, 'x', '{}', %s)",
                     (b"\x07" * 32, other_month))
    assert counts(postgres_url) == (3, 3)
    assert store.records("dev-a", from_seq=1, to_seq=1)[0]["frame"] == chain[1]["frame"]


def test_workers_creating_the_same_months_at_once(postgres_url):
    """Two processes' stores meet a new month together: one creates, both store."""
    later = NOW_MS + 800 * DAY_MS
    stores = [open_store(postgres_url, clock=Clock(later)) for _ in range(2)]
    stores[0].add_device("dev-a", b"\x01" * 32)
    stores[0].add_device("dev-b", b"\x01" * 32)
    errors = []
    barrier = threading.Barrier(2)

    def run(store, device):
        try:
            barrier.wait(10)
            store.store_batch(device, make_chain(5))
        except Exception as exc:      # reported below, with the test's assertion
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(s, d)) for s, d in zip(stores, ("dev-a", "dev-b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for s in stores:
        s.close()
    assert errors == []
    assert counts(postgres_url) == (10, 10)
    assert month_name(later) in partition_names(postgres_url)


def test_an_older_unpartitioned_records_table_keeps_working(postgres_url):
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE devices (device_id TEXT PRIMARY KEY, public_key BYTEA NOT NULL, "
                     "key_id BYTEA NOT NULL, added_at BIGINT NOT NULL, first_seq BIGINT NOT NULL, "
                     "contiguous_seq BIGINT, head_hash BYTEA)")
        conn.execute("CREATE TABLE records (device_id TEXT NOT NULL REFERENCES devices (device_id), "
                     "seq BIGINT NOT NULL, type INTEGER NOT NULL, hash BYTEA NOT NULL, prev_hash BYTEA, "
                     "frame BYTEA NOT NULL, payload JSONB NOT NULL, received_at BIGINT NOT NULL, "
                     "PRIMARY KEY (device_id, seq))")
    store = open_store(postgres_url, clock=Clock(NOW_MS))
    try:
        store.add_device("dev-a", b"\x01" * 32)
        assert store.store_batch("dev-a", make_chain(4)).new == [0, 1, 2, 3]
        assert store.store_batch("dev-a", make_chain(4)).duplicate == [0, 1, 2, 3]
    finally:
        store.close()
    assert partition_names(postgres_url) == set() and counts(postgres_url) == (4, 4)
