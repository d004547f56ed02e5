"""The message vectors (tests/vectors/messages.json) through the portable core,
on CPython and MicroPython 1.29: receipt codes (SPEC 5.5), receipts and
settlement acks (6.4, 6.5, 7.8.2, 7.8.7), alerts and status (6.2, 6.8),
intake frames (5.1-5.3), service-port frames (8.1-8.3), the salvage record
and the quarantine entry (3.14, 3.15).

Ed25519 is not in the portable core: a down message's signature check is an
input (`verify`), here one that accepts exactly the (message, signature)
pairs of the vectors' good acks.  So these tests prove that both
interpreters rebuild the same signed bytes; tests/messages checks the
signatures themselves with the real Ed25519."""

import binascii
import hashlib

from daozhang.agent.core import cbor
from daozhang.agent.core.intake import intake_frames, receipt
from daozhang.agent.core.journal import quarantine_entry, record, recovery
from daozhang.agent.core.service import service_frames
from daozhang.agent.core.sync import settlement_ack, settlement_delivery
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.agent.core.sync.sync_core import DOWN_KINDS as KINDS   # the down kinds the agent accepts

from portable import kit


def _hex(data):
    return binascii.hexlify(data).decode()


def _vectors():
    return kit.vector("messages.json")


def test_receipt_codes_decode_reencode_and_rebuild_the_signed_message():
    cases = _vectors()["receipt_codes"]
    assert len(cases) == 4
    for case in cases:
        rc = receipt.decode(case["code"])
        assert rc == kit.from_json(case["fields"]), case["name"]
        assert receipt.encode(rc) == case["code"], case["name"]
        assert _hex(receipt.b32decode(case["code"][4:])) == case["cbor"], case["name"]
        if case["expect"] == "ReceiptUnsigned":
            kit.raises(receipt.ReceiptUnsigned, receipt.check, rc)
        else:
            assert _hex(receipt.check(rc)) == case["signed_message"], case["name"]
    by_name = dict((c["name"], c) for c in cases)
    assert by_name["forged_hash"]["signed_message"] != by_name["batched"]["signed_message"]


def _good_pairs(v):
    """The (signed bytes, signature) of every ack a reader must accept."""
    pairs = []
    for case in v["receipt_acks"] + v["settlement_acks"]:
        if case["expect"] == "ok":
            msg = cbor.loads(binascii.unhexlify(case["hex"]))
            pairs.append((case["signed"], _hex(msg["sig"])))
    return pairs


def _outcome(payload, v, pairs):
    pub = binascii.unhexlify(v["backend_public"])
    kid = hashlib.sha256(pub).digest()[:8]

    def verify(key, message, sig):
        return key == pub and (_hex(message), _hex(sig)) in pairs
    try:
        msgs.decode_down(payload, v["device_id"], pub, kid, verify, kinds=KINDS)
    except msgs.DownRejected as exc:
        return exc.reason
    return "ok"


def test_receipts_and_settlement_acks_are_accepted_or_refused_for_the_stated_reason():
    v = _vectors()
    pairs = _good_pairs(v)
    assert len(pairs) == 3
    cases = v["receipt_acks"] + v["settlement_acks"]
    for case in cases:
        assert _outcome(binascii.unhexlify(case["hex"]), v, pairs) == case["expect"], case["name"]
    for case in v["receipt_acks"]:
        assert case["signed"] == v["receipt_acks"][0]["signed"]
    for case in v["settlement_acks"]:
        if "decoded" in case and case["signed"] is not None:
            assert _hex(settlement_ack.signed_bytes(kit.from_json(case["decoded"]))) == case["signed"], case["name"]


def test_a_settlement_batch_carries_its_acks_byte_for_byte():
    v = _vectors()
    case = v["settlement_batches"][0]
    acks = [binascii.unhexlify(a) for a in case["acks"]]
    payload = binascii.unhexlify(case["hex"])
    assert settlement_delivery.encode_batch(v["device_id"], acks) == payload
    assert settlement_delivery.decode_batch(payload, v["device_id"]) == acks
    kit.raises(msgs.DownRejected, settlement_delivery.decode_batch, payload, "other-pos")


def test_alert_and_status_messages_are_canonical_cbor_of_their_stated_maps():
    v = _vectors()
    for case in v["alert_messages"] + v["status_messages"]:
        payload = binascii.unhexlify(case["hex"])
        decoded = kit.from_json(case["decoded"])
        assert cbor.loads(payload) == decoded, case["name"]
        assert cbor.dumps(decoded) == payload, case["name"]
    for case in v["status_messages"]:
        body = kit.from_json(case["decoded"])
        extra = dict((k, x) for k, x in body.items() if k not in ("v", "dev", "state", "at"))
        again = msgs.encode_status(body["dev"], body["state"], body["at"], extra or None)
        assert again == binascii.unhexlify(case["hex"]), case["name"]
    batch = kit.from_json(v["alert_messages"][0]["decoded"])
    assert [a["seq"] for a in batch["alerts"]] == list(range(40, 40 + len(batch["alerts"])))


def test_intake_streams_decode_to_the_stated_events_whole_and_byte_by_byte():
    cases = _vectors()["intake_streams"]
    assert len(cases) == 8
    for case in cases:
        stream = binascii.unhexlify(case["hex"])
        assert kit.intake_events(stream, len(stream)) == case["events"], case["name"]
        assert kit.intake_events(stream, 1) == case["events"], case["name"]
    submit = intake_frames.parse_request(intake_frames.Message(cases[0]["events"][0]["object"]))
    assert (submit.id, submit.op, submit.txn["pos_txn_id"]) == (17, "submit", "V00001")


def test_intake_responses_are_rebuilt_byte_for_byte():
    import json
    for case in _vectors()["intake_responses"]:
        obj = json.loads(case["text"])
        data = binascii.unhexlify(case["hex"])
        if obj["ok"]:
            again = intake_frames.ok_response(obj["id"], obj["result"])
        else:
            err = obj["error"]
            again = intake_frames.error_response(obj["id"], err["code"], err["message"], err.get("field"))
        assert again == data, case["name"]
        assert data[:4] == (len(data) - 4).to_bytes(4, "big")


def test_service_frames_encode_and_decode_byte_for_byte():
    for case in _vectors()["service_frames"]:
        frame = service_frames.Frame(case["type"], case["seq"], kit.from_json(case["payload"]))
        data = binascii.unhexlify(case["hex"])
        assert service_frames.encode_frame(frame) == data, case["name"]
        assert service_frames.decode_frame(data) == frame, case["name"]


def test_service_streams_resynchronise_as_stated():
    for case in _vectors()["service_streams"]:
        events = kit.service_events(binascii.unhexlify(case["hex"]))
        assert events == [kit.from_json(e) for e in case["events"]], case["name"]


def test_the_salvage_record_and_its_quarantine_entry_agree():
    case = _vectors()["salvage"]
    frame = binascii.unhexlify(case["salvage_record"]["hex"])
    rec = record.decode_at(frame, 0)
    payload = kit.from_json(case["salvage_record"]["payload"])
    assert (rec.type, rec.seq, rec.size) == (record.TYPE_SALVAGE, case["salvage_record"]["seq"], len(frame))
    assert rec.payload == payload
    assert recovery.salvage_skips(rec, payload["lost_first"])
    assert not recovery.salvage_skips(rec, payload["lost_first"] + 1)
    entry = binascii.unhexlify(case["quarantine_entry"]["hex"])
    aside = entry[quarantine_entry.HEADER_SIZE:]
    assert quarantine_entry.encode(case["quarantine_entry"]["offset"], aside) == entry
    assert len(aside) == payload["length"] == case["quarantine_entry"]["length"]
    assert hashlib.sha256(aside).digest() == payload["sha256"] == entry[16:48]
    assert int.from_bytes(entry[4:12], "big") == payload["offset"]
