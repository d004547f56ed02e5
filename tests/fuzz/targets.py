"""Fuzz targets: every parser of outside bytes, one function each.

Each target takes bytes and states its invariant by raising AssertionError
(or letting a foreign exception escape) when it breaks:

- only the project's own error types escape (or, where the code promises
  it, nothing at all);
- no card number (agent/core/card_data.py) appears in anything the parser
  outputs: accepted payloads, error messages, findings it would store.

run_atheris.py drives them with atheris (coverage-guided); test_fuzz.py
runs each for a fixed number of seeded iterations in CI, and with
hypothesis as a second, always available driver.  SEEDS holds a few valid
inputs per target so mutation starts from the interesting shapes.
"""

import json
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daozhang.agent.core import card_data, cbor, strict_json
from daozhang.agent.core.errors import JournalCorrupt, RemoteError, ValidationError
from daozhang.agent.core.intake import intake_frames, txn
from daozhang.agent.core.journal import layout, record
from daozhang.agent.core.service.service_frames import NEED_DATA, REQUEST, Frame, FrameCodec
from daozhang.agent.core.service.service_session import DeviceSession
from daozhang.agent.core.sync import sync_messages
from daozhang.backend import ingest
from daozhang.settlement_files import MappingError, SettlementFileError, decode_settlement_bytes

NOW_MS = 1_800_000_000_000           # fixed: a fuzz run must be repeatable
PAN = "6222021234567894"
DEVICE = "pos-fuzz-1"
_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
_PUB = _KEY.public_key().public_bytes_raw()


def no_card_number(text, identifier=False, where="output"):
    if not isinstance(text, str) or not card_data.might_hold_card_number(text):
        return
    if card_data.find_card_number(text, identifier) is not None:
        raise AssertionError("a card number in the %s" % where)


def _payload_clean(payload):
    for key, value in payload.items():
        if key not in txn._IDENTIFIERS:
            no_card_number(value, key in txn._ID_FIELDS, "accepted field " + key)


def _error_clean(exc):
    no_card_number(str(exc), where="error message")
    no_card_number(getattr(exc, "field", None), where="error field")


# -- intake ------------------------------------------------------------------------

def intake_json(data):
    """A frame body: strict JSON, the request envelope, the transaction."""
    try:
        obj = intake_frames.decode_body(data)
        req = intake_frames.parse_request(intake_frames.Message(obj)) if "op" in obj else None
        payload = txn.validate(req.txn if req is not None else obj, NOW_MS)
    except (intake_frames.FrameError, ValidationError) as exc:
        _error_clean(exc)
        return
    _payload_clean(payload)


def intake_frames_stream(data):
    """Bytes off the socket, in two chunks: frames, then each request."""
    dec = intake_frames.FrameDecoder()
    cut = data[0] if data else 0
    try:
        for chunk in (data[1:1 + cut], data[1 + cut:], b""):
            dec.receive_data(chunk)
            while True:
                event = dec.next_event()
                if event in (intake_frames.NEED_DATA, intake_frames.CLOSED):
                    break
                try:
                    req = intake_frames.parse_request(event)
                    if req.op == "submit" and isinstance(req.txn, dict):
                        _payload_clean(txn.validate(req.txn, NOW_MS))
                except (intake_frames.FrameError, ValidationError) as exc:
                    _error_clean(exc)
            if dec.state != intake_frames.OPEN:
                break
    except intake_frames.FrameError as exc:        # fatal framing: the connection closes
        _error_clean(exc)


def strict_json_text(data):
    try:
        strict_json.loads(data.decode("utf-8", "replace"))
    except ValueError:
        pass
    except RecursionError:
        pass        # json's own limit on nesting, raised before our scan runs


# -- journal files ------------------------------------------------------------------

def journal_record(data):
    try:
        record.decode_at(data, 0)
    except record.FrameError:
        pass


def journal_superblock(data):
    block = data + bytes(max(0, 4096 - len(data)))
    try:
        layout.decode_superblock(block)
    except JournalCorrupt as exc:
        _error_clean(exc)
    layout.decode_segment_header(data, 0, bytes(16))      # None or a header: never raises


# -- the service port ----------------------------------------------------------------

class _Journal:
    size = 4096 + 2 * 8192
    segment_size = 8192
    segment_count = 2

    def read(self, offset, length):
        return bytes(length)


def service_port(data):
    """Bytes on the USB link into the device's session: it never raises."""
    session = DeviceSession(DEVICE, _Journal(), lambda *a: False, [_PUB], lambda n: bytes(n),
                            max_payload=4096)
    out = session.receive_data(data, 0) + session.on_silence(1)
    codec = FrameCodec(4096)
    codec.receive_data(out[:codec.max_frame])
    while codec.next_event() is not NEED_DATA:
        pass
    no_card_number(out.decode("latin-1"), where="service port answer")


def service_frames(data):
    codec = FrameCodec(4096)
    codec.receive_data(data[:codec.max_frame])
    while codec.next_event() is not NEED_DATA:
        pass


# -- MQTT payloads on the backend, and down messages on the agent ----------------------

def backend_receipts(data):
    """ingest.check_batch promises never to raise on device bytes."""
    out = ingest.check_batch(DEVICE, _PUB, data)
    for rec in out.records:
        for key, value in rec["payload"].items():
            no_card_number(value, key in card_data.IDENTIFIER_KEYS, "stored payload")
    for finding in out.findings:
        no_card_number(finding.detail, where="finding detail")
        if finding.evidence:
            no_card_number(finding.evidence.decode("latin-1"), where="finding evidence")


_BACKEND = []
_RESET_EVERY = 100      # the duplicate check reads the device's alerts: keep them few


def backend_alert(data):
    """An alerts-topic message into a real (SQLite, in memory) backend."""
    if _BACKEND and _BACKEND[0][2] >= _RESET_EVERY:
        _BACKEND.pop()[0].close()
    if not _BACKEND:
        from daozhang.backend.ack import AckSigner
        from daozhang.backend.service import Ingestor
        from daozhang.backend.store import open_store
        from daozhang.signing import Ed25519Signer
        store = open_store(":memory:")
        store.add_device(DEVICE, _PUB)
        _BACKEND.append([store, Ingestor(store, AckSigner(Ed25519Signer(_KEY)),
                                          clock=lambda: NOW_MS, log=lambda *a, **k: None), 0])
    _BACKEND[0][2] += 1
    store, ingestor = _BACKEND[0][0], _BACKEND[0][1]
    ingestor.alert(DEVICE, data)
    for alert in store.alerts(DEVICE)[-1:]:
        no_card_number(json.dumps(alert["payload"], ensure_ascii=False), True, "stored alert")
    for finding in store.findings(DEVICE)[-1:]:
        no_card_number(finding["detail"], where="stored finding")


def agent_down(data):
    try:
        sync_messages.decode_down(data, DEVICE, _PUB, b"k" * 8, lambda *a: False)
    except RemoteError:
        pass


# -- settlement files ---------------------------------------------------------------------

def settlement_csv(data):
    """Every column of every row, and every bad-row reason, masked."""
    try:
        parsed = decode_settlement_bytes(data)
    except (SettlementFileError, MappingError) as exc:
        _error_clean(exc)
        return
    for row in parsed.rows:
        for key, value in row.items():
            no_card_number(value, key in card_data.IDENTIFIER_KEYS, "settlement row " + key)
    for bad in parsed.bad_rows:
        no_card_number(bad["reason"], where="bad-row reason")


TARGETS = {
    "intake_json": intake_json,
    "intake_frames": intake_frames_stream,
    "strict_json": strict_json_text,
    "journal_record": journal_record,
    "journal_superblock": journal_superblock,
    "service_port": service_port,
    "service_frames": service_frames,
    "backend_receipts": backend_receipts,
    "backend_alert": backend_alert,
    "agent_down": agent_down,
    "settlement_csv": settlement_csv,
}

def _sale(**extra):
    obj = {"kind": "sale", "pos_txn_id": "T-1", "time": "2027-01-15T08:00:00+08:00",
           "amount": 1250, "currency": "CNY", "card": "622588******1234", "card_type": "debit",
           "auth_code": "A1B2C3", "rrn": "123456789012", "merchant_id": "102290058120001",
           "terminal_id": "SH000001", "mcc": "5812", "settlement": "T1"}
    obj.update(extra)
    return obj


def _frame(obj):
    return intake_frames.encode(obj)


def _journal_frame():
    return record.encode(record.TYPE_TRANSACTION, 0, 0, bytes(32), NOW_MS,
                         bytes(record.BOOT_ID_SIZE), 5, _sale(note="card " + PAN))[0]


def _service_requests():
    codec = FrameCodec(4096)
    return b"".join(codec.send(Frame(REQUEST, i, p)) for i, p in enumerate((
        {"cmd": "info"}, {"cmd": "auth_begin"}, {"cmd": "read", "offset": 0, "length": 8},
        {"cmd": "x" + PAN})))


def seeds():
    """name -> list of seed inputs (valid shapes, and card numbers to find)."""
    body = json.dumps({"v": 1, "id": 1, "op": "submit", "txn": _sale()}).encode()
    pan_body = json.dumps(_sale(note="x 6222 0212 3456 7894", pos_txn_id="T.6222")).encode()
    frame = _journal_frame()
    with open(os.path.join(os.path.dirname(__file__), "seed_settlement.csv"), "rb") as f:
        csv_seed = f.read()
    return {
        "intake_json": [body, pan_body, b'{"amount":1,"amount":2}'],
        "intake_frames": [bytes([4]) + _frame({"id": 1, "op": "ping"}) + _frame(json.loads(body)),
                          bytes([0]) + _frame(_sale(pos_txn_id="T62220212345678941"))],
        "strict_json": [body, b'[{"a":1,"b":{"a":2,"\\u0061":3}}]'],
        "journal_record": [frame],
        "journal_superblock": [superblock()],
        "service_port": [_service_requests()],
        "service_frames": [_service_requests()],
        "backend_receipts": [sync_messages.encode_receipts(DEVICE, [frame])],
        "backend_alert": [cbor.dumps({"v": 1, "dev": DEVICE, "alert": {
            "kind": "settlement_overdue", "state": "firing", "severity": "warning", "seq": 3,
            "key": "T-1", "detail": "sale " + PAN}})],
        "agent_down": [sync_messages.encode_receipts(DEVICE, [frame])],
        "settlement_csv": [csv_seed],
    }


def superblock():
    """A real journal's first 4096 bytes."""
    import tempfile
    from daozhang.agent.journal_file import create_journal
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "j.dzj")
        create_journal(path, DEVICE, size=4096 + 2 * 65536, segment_size=65536)
        with open(path, "rb") as f:
            return f.read(4096)
