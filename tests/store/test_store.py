"""The backend store's behaviour, identical on SQLite and PostgreSQL."""

import json
import os

import pytest
from hypothesis import given, strategies as st

from daozhang.agent.core.errors import LocalError, StorageError
from daozhang.backend.store import DeviceKeyConflict, UnknownDevice, default_key_id, open_store
from daozhang.backend.store_rows import BadRecord
from dztest.store_records import make_chain

pytestmark = pytest.mark.timeout(60)

KEY = b"\x01" * 32
OTHER_KEY = b"\x02" * 32


@pytest.fixture
def store(store_url):
    s = open_store(store_url, clock=lambda: 1_700_000_000_000)
    s.add_device("dev-a", KEY)
    yield s
    s.close()


def test_add_device_is_idempotent_and_refuses_another_key(store):
    assert store.add_device("dev-b", KEY) is True
    assert store.add_device("dev-b", KEY) is False
    with pytest.raises(DeviceKeyConflict, match="dev-b"):
        store.add_device("dev-b", OTHER_KEY)
    assert store.device("dev-b")["public_key"] == KEY
    assert store.add_device("dev-b", OTHER_KEY, replace=True) is False
    row = store.device("dev-b")
    assert (row["public_key"], row["key_id"]) == (OTHER_KEY, default_key_id(OTHER_KEY))
    assert store.device("nope") is None
    assert [d["device_id"] for d in store.devices()] == ["dev-a", "dev-b"]


def test_store_batch_new_then_duplicate(store):
    chain = make_chain(10)
    first = store.store_batch("dev-a", chain[:6])
    assert (first.new, first.duplicate, first.forked) == (list(range(6)), [], [])
    again = store.store_batch("dev-a", chain[3:])
    assert (again.new, again.duplicate, again.forked) == ([6, 7, 8, 9], [3, 4, 5], [])
    assert (again.contiguous_seq, again.head_hash) == (9, chain[9]["hash"])
    stored = store.records("dev-a")
    assert [r["seq"] for r in stored] == list(range(10))
    assert stored[4]["frame"] == chain[4]["frame"]
    assert stored[4]["payload"] == json.loads(chain[4]["payload"])
    assert stored[4]["received_at"] == 1_700_000_000_000
    assert store.stats()["records"] == 10


def test_fork_is_a_finding_and_never_overwrites(store):
    chain = make_chain(5)
    store.store_batch("dev-a", chain)
    fork = make_chain(2, start=2, salt=b"evil", prev=chain[1]["hash"])
    result = store.store_batch("dev-a", fork + make_chain(1, start=5, prev=chain[4]["hash"]))
    assert (result.new, result.duplicate, result.forked) == ([5], [], [2, 3])
    assert [r["hash"] for r in store.records("dev-a", 2, 3)] == [chain[2]["hash"],
                                                                chain[3]["hash"]]
    findings = store.findings("dev-a", kind="fork")
    assert [(f["seq"], f["evidence"]) for f in findings] == [(2, fork[0]["frame"]),
                                                              (3, fork[1]["frame"])]
    assert json.loads(findings[0]["detail"]) == {"seq": 2, "stored_hash": chain[2]["hash"].hex(),
                                                 "offered_hash": fork[0]["hash"].hex()}
    # The same fork delivered again (MQTT redelivery) is one finding, not two.
    assert store.store_batch("dev-a", fork).forked == [2, 3]
    assert store.stats()["findings"] == 2


def test_fork_inside_one_batch(store):
    chain = make_chain(3)
    twin = dict(chain[1], hash=b"\xee" * 32, frame=b"other")
    result = store.store_batch("dev-a", [chain[0], chain[1], twin, chain[1], chain[2]])
    assert (result.new, result.duplicate, result.forked) == ([0, 1, 2], [1], [1])
    assert store.records("dev-a", 1, 1)[0]["hash"] == chain[1]["hash"]


def test_unknown_device_stores_nothing(store):
    with pytest.raises(UnknownDevice, match="dev-x"):
        store.store_batch("dev-x", make_chain(3))
    assert store.stats()["records"] == 0


def test_a_bad_record_refuses_the_whole_batch(store):
    chain = make_chain(3)
    bad = dict(chain[2], hash=b"short")
    with pytest.raises(BadRecord, match=r"record 2 \(seq 2\): hash must be 32 bytes"):
        store.store_batch("dev-a", chain[:2] + [bad])
    assert store.records("dev-a") == []


def test_a_failure_inside_the_transaction_rolls_back_everything(store, monkeypatch):
    chain = make_chain(4)
    store.store_batch("dev-a", chain[:2])
    fork = dict(chain[1], hash=b"\xee" * 32)

    def broken(tx, findings):
        raise StorageError("injected failure after the records were inserted")
    monkeypatch.setattr(store, "_insert_findings", broken)
    with pytest.raises(StorageError, match="injected"):
        store.store_batch("dev-a", [fork] + chain[2:])
    monkeypatch.undo()
    assert [r["seq"] for r in store.records("dev-a")] == [0, 1]
    assert store.last_contiguous_seq("dev-a") == 1
    assert store.findings() == []


def test_contiguous_seq_stops_at_a_gap_until_it_is_filled(store):
    chain = make_chain(10)
    assert store.last_contiguous_seq("dev-a") is None
    assert store.store_batch("dev-a", chain[1:4]).contiguous_seq is None  # seq 0 missing
    assert store.store_batch("dev-a", chain[0:1]).contiguous_seq == 3
    assert store.store_batch("dev-a", chain[6:10]).contiguous_seq == 3    # 4, 5 missing
    result = store.store_batch("dev-a", chain[4:6])
    assert (result.contiguous_seq, result.head_hash) == (9, chain[9]["hash"])
    assert store.head("dev-a") == (9, chain[9]["hash"])


def test_contiguous_seq_stops_at_a_chain_break(store):
    chain = make_chain(3)
    # seq 3 does not link to seq 2's hash: stored (it is the first for seq 3)
    # but never counted as contiguous, and reported once.
    stray = make_chain(2, start=3, prev=b"\x00" * 32)
    store.store_batch("dev-a", chain)
    assert store.store_batch("dev-a", stray).contiguous_seq == 2
    assert store.store_batch("dev-a", stray).contiguous_seq == 2
    breaks = store.findings("dev-a", kind="chain_break")
    assert [(f["seq"], json.loads(f["detail"])["expected_prev_hash"]) for f in breaks] \
        == [(3, chain[2]["hash"].hex())]


def test_first_seq_is_per_device(store):
    store.add_device("dev-b", KEY, first_seq=100)
    assert store.store_batch("dev-b", make_chain(3, start=100)).contiguous_seq == 102


def test_long_runs_advance_across_walk_pages(store):
    chain = make_chain(2500)
    store.store_batch("dev-a", chain[1:])
    assert store.store_batch("dev-a", chain[:1]).contiguous_seq == 2499


def test_latest_record(store):
    assert store.latest_record("dev-a") is None
    chain = make_chain(5)
    store.store_batch("dev-a", chain)
    assert store.latest_record("dev-a")["seq"] == 4
    assert store.latest_record("dev-a", types={1})["seq"] == 3
    assert store.latest_record("dev-a", types={9}) is None


def test_stats_and_receipts_use_transaction_types(store_url):
    with open_store(store_url, transaction_types={1, 2}) as s:
        s.add_device("dev-a", KEY)
        s.store_batch("dev-a", make_chain(6))
        s.add_alert("dev-a", 1, "near_full", "raised", "warning", {"fill": 91})
        s.add_finding("dev-a", 3, "gap", "seq 3 missing")
        assert s.stats() == {"devices": 1, "records": 6, "receipts": 6, "alerts": 1,
                             "findings": 1}
    with open_store(store_url) as s:  # default {1}: odd seqs in make_chain
        assert s.stats()["receipts"] == 3
        assert [r["seq"] for r in s.receipts("dev-a")] == [1, 3, 5]
        assert [r["seq"] for r in s.receipts("dev-a", from_seq=2, limit=1)] == [3]


def test_alerts_are_stored_once(store):
    assert store.add_alert("dev-a", 7, "near_full", "raised", "warning", {"fill": 91})
    assert not store.add_alert("dev-a", 7, "near_full", "raised", "warning", {"fill": 91})
    assert store.add_alert("dev-a", 7, "near_full", "resolved", "info", {"fill": 10})
    assert [(a["state"], a["payload"]) for a in store.alerts("dev-a")] == \
        [("raised", {"fill": 91}), ("resolved", {"fill": 10})]


def test_findings_dedup_only_with_a_key(store):
    assert store.add_finding("dev-a", None, "bad_signature", {"why": "x"}, dedup_key="k1")
    assert not store.add_finding("dev-a", None, "bad_signature", {"why": "x"}, dedup_key="k1")
    assert store.add_finding("unknown-device", 5, "unknown_device", "no such device")
    assert store.add_finding("unknown-device", 5, "unknown_device", "no such device")
    assert len(store.findings()) == 3
    assert json.loads(store.findings("dev-a")[0]["detail"]) == {"why": "x"}


def test_acks_only_move_forward(store):
    assert store.last_ack("dev-a") is None
    assert store.record_ack("dev-a", 10, b"\x0a" * 32)
    assert not store.record_ack("dev-a", 5, b"\x05" * 32)
    assert not store.record_ack("dev-a", 10, b"\x0b" * 32)
    assert store.record_ack("dev-a", 11, b"\x0c" * 32)
    assert store.last_ack("dev-a") == (11, b"\x0c" * 32)


def test_settlements(store):
    assert store.add_settlement("ACQ-1", {"amount": 500, "mcc": "5411"})
    assert not store.add_settlement("ACQ-1", {"amount": 999})
    store.match_settlement("ACQ-1", "dev-a", 3, "matched")
    with pytest.raises(LocalError, match="ACQ-2"):
        store.match_settlement("ACQ-2", "dev-a", 4, "matched")
    assert [(s["acquirer_ref"], s["row"], s["seq"], s["status"]) for s in store.settlements()] \
        == [("ACQ-1", {"amount": 500, "mcc": "5411"}, 3, "matched")]
    assert store.settlements(status="unmatched") == []


@pytest.mark.parametrize("payload, message", [
    ("{not json", "not JSON"),
    ('{"x": NaN}', "not JSON"),
    ({"x": float("inf")}, "cannot be JSON"),
    ({"x": b"raw"}, "encode bytes as hex"),
    ({"x": "nul\x00"}, "NUL"),
])
def test_payload_must_be_json_both_databases_take(store, payload, message):
    record = dict(make_chain(1)[0], payload=payload)
    with pytest.raises(BadRecord, match=message):
        store.store_batch("dev-a", [record])


def test_records_may_be_tuples(store):
    r = make_chain(1)[0]
    result = store.store_batch("dev-a", [(r["seq"], r["type"], r["hash"], r["prev_hash"],
                                          r["frame"], r["payload"])])
    assert result.new == [0]
    with pytest.raises(BadRecord, match="expected 6 fields"):
        store.store_batch("dev-a", [(1, 1)])


def test_data_survives_reopening(store_url):
    with open_store(store_url) as s:
        s.add_device("dev-a", KEY)
        s.store_batch("dev-a", make_chain(3))
    with open_store(store_url) as s:
        assert s.last_contiguous_seq("dev-a") == 2
        assert s.stats()["records"] == 3


def test_sqlite_is_wal_and_synchronous_full(tmp_path):
    path = str(tmp_path / "b.db")
    with open_store("sqlite://" + path) as s:
        conn = s.db._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert os.path.exists(path)


def test_open_store_refuses_what_it_does_not_know(tmp_path):
    with pytest.raises(LocalError, match="expected a file path"):
        open_store("mysql://x/y")
    with pytest.raises(StorageError, match="does not exist"):
        open_store(str(tmp_path / "missing-dir" / "b.db"))


def test_a_newer_schema_is_refused(store_url):
    with open_store(store_url) as s:
        with s.db.transaction() as tx:
            tx.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StorageError, match="schema version 99"):
        open_store(store_url)


@pytest.mark.postgres
def test_postgres_url_errors_name_the_server_without_password():
    with pytest.raises(StorageError, match=r"postgresql://postgres@127\.0\.0\.1:1/x") as info:
        open_store("postgresql://postgres:secret@127.0.0.1:1/x")
    assert "secret" not in str(info.value)


@given(st.text(max_size=60) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) |
    st.binary(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                               max_size=3), max_leaves=8))
def test_payload_json_check_fuzz(value):
    """Invariant: a payload becomes JSON text that both databases accept
    (parses, no NaN, no NUL) or raises BadRecord; nothing else."""
    from daozhang.backend.store_rows import json_text
    try:
        text = json_text(value, "payload")
    except BadRecord:
        return
    parsed = json.loads(text, parse_constant=lambda name: pytest.fail("accepted " + name))
    assert "\x00" not in json.dumps(parsed, ensure_ascii=False)


@pytest.mark.postgres
def test_postgres_reconnects_after_the_server_drops_the_connection(tmp_path):
    import psycopg
    from dztest.pg import fresh_schema

    with fresh_schema() as url, open_store(url) as s:
        s.add_device("dev-a", KEY)
        pid = s.db._conn.info.backend_pid
        with psycopg.connect(url, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        with pytest.raises(StorageError, match="PostgreSQL"):
            s.store_batch("dev-a", make_chain(2))      # this call sees the break
        assert s.store_batch("dev-a", make_chain(2)).new == [0, 1]  # the next reconnects
        assert s.stats()["records"] == 2
