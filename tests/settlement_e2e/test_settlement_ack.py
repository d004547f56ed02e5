"""Settlement acks without a broker: the codec (tamper, fuzz, MicroPython),
and the backend's Settler (matching, routing, idempotent re-ingest)."""

import os

import pytest
from hypothesis import given, settings, strategies as st

from daozhang.agent.core import cbor
from daozhang.agent.core.sync import settlement_ack as sa
from daozhang.agent.core.sync import settlement_delivery
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.agent.core.sync.sync_core import DOWN_KINDS
from daozhang.signing import ed25519_verify
from daozhang.backend.ack import AckSigner
from daozhang.backend.settle import Settler
from daozhang.backend.store import open_store
from daozhang.settlement_files import parse_settlement_text
from dztest.dates import DAY_MS, SALE_MS, rfc3339
from dztest.micropython import run_micropython
from dztest.settlement_e2e import csv_text, now_ms, plain_row, stored_receipts
from dztest.sync import signer, txn_payload

DEV = "pos-ack-1"
BACKEND = AckSigner(signer(9))
OTHER = AckSigner(signer(11))
# The acquirer settles a day after the sales of dztest.sync.txn_payload (dated relative to now).
SETTLED_AT = rfc3339(SALE_MS + DAY_MS)


def decode(payload, dev=DEV, backend=BACKEND):
    return msgs.decode_down(payload, dev, backend.public_bytes, backend.kid, ed25519_verify,
                            DOWN_KINDS)


def ack(row=None, dev=DEV, by=BACKEND, seq=3, ack_id=b"\x01" * 16, at=1800000000000, n=1):
    return sa.encode(dev, ack_id, at, seq, row or plain_row("R-1", "000000000001"), by.kid,
                     by.signer.sign, n)


def test_a_genuine_ack_decodes_with_its_row():
    msg = decode(ack())
    assert msg["kind"] == "settlement" and msg["row"]["acquirer_ref"] == "R-1"
    assert msg["seq"] == 3 and msg["id"] == b"\x01" * 16


@pytest.mark.parametrize("mutate, reason", [
    (lambda m: m.update(dev="pos-other"), msgs.WRONG_DEVICE),
    (lambda m: m["row"].update(settled_amount=m["row"]["settled_amount"] + 1), msgs.BAD_SIGNATURE),
    (lambda m: m.update(id=b"\x02" * 16), msgs.BAD_SIGNATURE),
    (lambda m: m.update(seq=None), msgs.BAD_SIGNATURE),
    (lambda m: m["row"].update(extra="x"), msgs.SCHEMA),
    (lambda m: m["row"].update(mcc="54110"), msgs.SCHEMA),
    (lambda m: m.update(kid=OTHER.kid), msgs.UNKNOWN_KEY),
])
def test_tampered_acks_are_refused_with_one_exact_reason(mutate, reason):
    msg = cbor.loads(ack())
    mutate(msg)
    with pytest.raises(msgs.DownRejected) as exc:
        decode(cbor.dumps(msg))
    assert exc.value.reason == reason


def test_a_receipts_ack_signature_does_not_verify_as_a_settlement_ack():
    msg = cbor.loads(ack())
    msg["sig"] = BACKEND.signer.sign(msgs.receipts_ack_message(DEV, 1, b"\x00" * 32, 1, BACKEND.kid))
    with pytest.raises(msgs.DownRejected) as exc:
        decode(cbor.dumps(msg))
    assert exc.value.reason == msgs.BAD_SIGNATURE


def test_an_ack_signed_by_another_key_with_our_kid_is_refused():
    msg = cbor.loads(ack(by=OTHER))
    msg["kid"] = BACKEND.kid
    msg["sig"] = OTHER.signer.sign(sa.signed_bytes(msg))
    with pytest.raises(msgs.DownRejected) as exc:
        decode(cbor.dumps(msg))
    assert exc.value.reason == msgs.BAD_SIGNATURE


def test_without_the_settlement_kind_decode_down_refuses_a_settlement_ack():
    # Importing settlement_ack registers nothing: the caller names the kinds.
    with pytest.raises(msgs.DownRejected) as exc:
        msgs.decode_down(ack(), DEV, BACKEND.public_bytes, BACKEND.kid, ed25519_verify)
    assert exc.value.reason == msgs.UNKNOWN_KIND
    assert "settlement" not in msgs.KINDS


# Invariant: whatever the bytes, decode_down returns a checked map or raises
# DownRejected - nothing else.
@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=600),
                 st.builds(lambda data, i: data[:i] + bytes([data[i % len(data)] ^ 0x41]) + data[i + 1:],
                           st.just(ack()), st.integers(0, len(ack()) - 1))))
def test_fuzz_settlement_down_messages(payload):
    try:
        msg = decode(payload)
    except msgs.DownRejected:
        return
    assert msg["kind"] in ("settlement", "receipts") and msg["dev"] == DEV


def test_settlement_ack_core_runs_on_micropython():
    payload = ack()
    code = r'''
import binascii
from daozhang.agent.core import cbor
from daozhang.agent.core.sync import settlement_ack, sync_core
msg = cbor.loads(binascii.unhexlify("%s"))
print(settlement_ack.row_ok(msg["row"]), sync_core.DOWN_KINDS["settlement"]["signed"] is settlement_ack.signed_bytes)
print(binascii.hexlify(settlement_ack.signed_bytes(msg)).decode())
''' % payload.hex()
    out = run_micropython(code).split()
    assert out[:2] == ["True", "True"]
    assert out[2] == sa.signed_bytes(cbor.loads(payload)).hex()


# -- the backend's Settler ------------------------------------------------------

class Published(list):
    """What the Settler published, one (device, ack payload) per ack (the
    batches of SPEC 7.8.7 unpacked)."""

    def __call__(self, device_id, payload):
        acks = settlement_delivery.decode_batch(payload, device_id)
        for ack_payload in (acks if acks is not None else [payload]):
            self.append((device_id, ack_payload))


def test_settler_matches_routes_and_reingest_changes_nothing(tmp_path):
    store = open_store(str(tmp_path / "b.db"))
    t1, t2 = txn_payload(1, amount=10000), txn_payload(2, amount=20000)
    stored_receipts(store, "pos-a", [t1, t2])
    rows = [
        {"acquirer_ref": "X1", "terminal_id": "SH000001", "rrn": t1["rrn"], "amount": 10000,
         "fee": 55, "settled_amount": 9945, "settled_at": SETTLED_AT},
        # no rrn: auth code + amount + time window
        {"acquirer_ref": "X2", "terminal_id": "SH000001", "auth_code": t2["auth_code"],
         "txn_time": t2["time"], "amount": 20000, "fee": 110, "settled_amount": 19890,
         "settled_at": SETTLED_AT},
        {"acquirer_ref": "X3", "terminal_id": "SH000001", "rrn": "nope", "amount": 5,
         "fee": 0, "settled_amount": 5, "settled_at": SETTLED_AT},
        {"acquirer_ref": "X4", "terminal_id": "OTHER01", "rrn": "nope", "amount": 5,
         "fee": 0, "settled_amount": 5, "settled_at": SETTLED_AT},
    ]
    parsed = parse_settlement_text(csv_text(rows))
    sent = Published()
    report = Settler(store, BACKEND, sent, random_bytes=os.urandom).settle(parsed)
    assert (report["new"], report["sent"], report["unknown"], report["unrouted"]) == (4, 2, 1, 1)
    decoded = [decode(p, dev=d) for d, p in sent]
    assert [(d, m["row"]["acquirer_ref"], m["seq"]) for (d, _), m in zip(sent, decoded)] == [
        ("pos-a", "X1", 0), ("pos-a", "X2", 1), ("pos-a", "X3", None)]
    assert len({m["id"] for m in decoded}) == 3
    statuses = {s["acquirer_ref"]: s["status"] for s in store.settlements()}
    assert statuses == {"X1": "sent", "X2": "sent", "X3": "unknown", "X4": "unrouted"}
    before = store.settlements()
    again = Published()
    report2 = Settler(store, BACKEND, again).settle(parsed)
    assert (report2["new"], report2["already"], again) == (0, 4, [])
    assert store.settlements() == before
    store.close()


def test_a_row_stored_but_not_sent_is_sent_on_the_next_run(tmp_path):
    store = open_store(str(tmp_path / "b.db"))
    t1 = txn_payload(1)
    stored_receipts(store, "pos-a", [t1])
    parsed = parse_settlement_text(csv_text([
        {"acquirer_ref": "Y1", "terminal_id": "SH000001", "rrn": t1["rrn"], "amount": 1250,
         "fee": 7, "settled_amount": 1243, "settled_at": SETTLED_AT}]))

    def broken(device_id, payload):
        raise OSError("broker gone")

    with pytest.raises(OSError):
        Settler(store, BACKEND, broken).settle(parsed)
    # Stored pending before the broker was tried: a re-run changes nothing,
    # and the resender (backend run) sends it; pending until confirmed.
    sent = Published()
    settler = Settler(store, BACKEND, sent)
    report = settler.settle(parsed)
    assert (report["new"], report["already"], report["pending"], len(sent)) == (0, 1, 1, 0)
    assert settler.resender.tick(now_ms()) == 1 and len(sent) == 1
    assert decode(sent[0][1], dev="pos-a")["n"] == 1
    settler.resender.on_status("pos-a", {"state": "online", "settle_n": 1}, now_ms())
    assert settler.outbox.counts() == {"queued": 1, "pending": 0, "confirmed": 1}
    store.close()
