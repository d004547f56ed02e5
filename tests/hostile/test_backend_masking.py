"""The backend stores no card number from a device (issue 12): record
payloads and alerts-topic messages are masked by the one rule before the
database sees them (backend/ingest.py decode_frame, service.alert)."""

import pytest

from daozhang.agent.core import card_data, cbor
from daozhang.agent.core.journal import record
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.backend.store import open_store
from dztest.sync import DEVICE, Pair, make_journal, txn_payload

PAN = "6222 0212 3456 7894"


@pytest.fixture
def pair(tmp_path):
    path, journal = make_journal(tmp_path)
    store = open_store(str(tmp_path / "backend.db"))
    yield Pair(journal, store)
    journal.close()
    store.close()


def transactions(store):
    return [r for r in store.records(DEVICE) if r["type"] == record.TYPE_TRANSACTION]


def test_a_journal_written_by_an_old_version_is_stored_masked(pair):
    # An old agent accepted these (before the one rule): they are in its journal, signed.
    old = [dict(txn_payload(0), note="card " + PAN),
           dict(txn_payload(1), pos_txn_id="T.6222.0212.3456.7894"),
           dict(txn_payload(2), pos_txn_id="4200001234202612031234567890")]
    pair.journal.append_many([(record.TYPE_TRANSACTION, p) for p in old])
    frames = [r[2] for r in pair.reader.read(0, 1 << 20)[0]]
    assert pair.ingestor.receipts(DEVICE, msgs.encode_receipts(DEVICE, frames)) is not None
    rows = transactions(pair.store)
    for row in rows:
        for key, value in row["payload"].items():
            if isinstance(value, str):
                assert card_data.find_card_number(value, key in card_data.IDENTIFIER_KEYS) is None
    notes = {r["payload"].get("pos_txn_id"): r["payload"].get("note") for r in rows}
    assert notes["T-000000"] == "card 6222 02** **** 7894"
    assert "T.6222.02**.****.7894" in notes                      # the id, masked
    assert "4200001234202612031234567890" in notes               # an identifier, untouched
    stored_frames = [r["frame"] for r in pair.store.records(DEVICE)]
    assert stored_frames == frames                               # the signed bytes stay verifiable


def test_an_alert_message_is_stored_masked(pair):
    alert = {"kind": "unsettled", "state": "firing", "severity": "warning", "seq": 5,
             "pos_txn_id": "T-1", "detail": "sale 4111-1111-1111-1111 not settled"}
    pair.ingestor.alert(DEVICE, cbor.dumps({"v": 1, "dev": DEVICE, "alert": alert}))
    (stored,) = pair.store.alerts(DEVICE)
    assert stored["payload"]["alert"]["detail"] == "sale 4111-11**-****-1111 not settled"


def test_findings_from_device_bytes_are_stored_masked(pair):
    # A receipts message naming a card number as its device, on this device's topic.
    bad = msgs.encode_receipts("4111111111111111", [b"\x00" * 20])
    pair.ingestor.receipts(DEVICE, bad)
    (finding,) = pair.store.findings(DEVICE)
    assert finding["kind"] == "wrong_device"
    assert "411111******1111" in finding["detail"] and "4111111111111111" not in finding["detail"]
    # A malformed alert whose raw bytes (kept as evidence) hold a card number.
    pair.ingestor.alert(DEVICE, b"\xa1\x63bad\x70" + b"6222021234567894")
    evidence = [f["evidence"] for f in pair.store.findings(DEVICE) if f["kind"] == "malformed"]
    assert evidence and b"6222021234567894" not in evidence[0] and b"622202******7894" in evidence[0]
