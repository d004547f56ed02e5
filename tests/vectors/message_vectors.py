"""The message vectors (tests/vectors/messages.json): every byte daozhang sends
besides the journal, made by the code that sends it, with what it means.

Written by make_vectors.py (which also writes the journal vectors this file
takes its receipts from).  Each case holds the bytes in hex (`hex`, or `code`
for a receipt code), a `meaning` for the reader, the SPEC section, the decoded
value where there is one (byte strings as {"$bytes": hex}, as in cbor.json)
and what a reader must conclude (`expect`).  Checked by tests/journal/
test_message_vectors.py (CPython, with the real Ed25519 and the backend and
host readers) and tests/portable/test_message_vectors.py (both interpreters,
through the portable core).
"""

import hashlib
import os
import sys
import tempfile

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daozhang.agent.core import cbor
from daozhang.agent.core.intake import intake_frames, receipt
from daozhang.agent.core.journal import layout, quarantine_entry, record, recovery, ring_storage
from daozhang.agent.core.journal.ring import Clock, Ring
from daozhang.agent.core.service import service_frames
from daozhang.agent.core.settlement import alerts
from daozhang.agent.core.sync import settlement_ack, settlement_delivery
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.signing import Ed25519Signer
from daozhang.agent.sync_status import journal_sync_view
from daozhang.backend.ack import AckSigner

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # tests/, for portable.kit
from portable import kit  # noqa: E402  (the event readers both interpreters use)

BACKEND_SEED = bytes(range(32, 64))
OTHER_SEED = bytes(range(64, 96))


def plain(value):
    """A JSON-able copy of `value`: bytes as {"$bytes": hex}."""
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, dict):
        return dict((k, plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def signer_of(seed):
    return Ed25519Signer(Ed25519PrivateKey.from_private_bytes(seed))


# -- receipt codes (SPEC 5.5) ----------------------------------------------------------


def receipt_cases(dev, appended):
    """`appended`: {pos_txn_id: the journal vector's Appended for that sale}."""
    def case(name, meaning, rc, expect):
        code = receipt.encode(rc)
        return {"name": name, "spec": "5.5", "meaning": meaning, "code": code,
                "cbor": receipt.b32decode(code[len(receipt.PREFIX):]).hex(), "fields": plain(rc),
                "signed_message": _signed_or_none(rc), "expect": expect}

    lone = receipt.from_appended(dev, appended["V00001"])
    batched = receipt.from_appended(dev, appended["V00003"])
    unsigned = receipt.from_appended(dev, appended["V00005"])
    forged = dict(batched)
    forged["hash"] = bytes([batched["hash"][0] ^ 1]) + batched["hash"][1:]
    return [
        case("lone", "sale V00001, alone in its commit: empty audit path, hash = the checkpoint's head", lone, "ok"),
        case("batched", "sale V00003, second of three in one commit: a two-hash audit path to the batch root",
             batched, "ok"),
        case("outage", "sale V00005, committed while the signer was out: alg 0, no signature", unsigned,
             "ReceiptUnsigned"),
        case("forged_hash", "V00003's receipt with one bit of the record hash flipped: the root moves, the "
             "signature fails", forged, "ReceiptBadSignature"),
    ]


def _signed_or_none(rc):
    try:
        return receipt.check(rc).hex()
    except receipt.ReceiptInvalid:
        return None


# -- acks on daozhang/v1/<dev>/acks (SPEC 6.4, 6.5, 7.8.2, 7.8.7) -------------------------


def receipts_ack_cases(dev, to, head, at):
    backend = AckSigner(signer_of(BACKEND_SEED))
    other = AckSigner(signer_of(OTHER_SEED))
    good = backend.receipts_ack(dev, to, head, at)
    msg = cbor.loads(good)

    def altered(**changes):
        m = dict(msg)
        m.update(changes)
        return cbor.dumps(m)

    def case(name, meaning, payload, expect):
        return {"name": name, "spec": "6.4, 6.5", "meaning": meaning, "hex": payload.hex(),
                "signed": msgs.receipts_ack_message(dev, to, head, at, backend.kid).hex(), "expect": expect}

    extra = dict(msg)
    extra["note"] = "x"
    return [
        case("ack", "the backend holds records 0..%d of %s; record %d has hash `head`" % (to - 1, dev, to - 1),
             good, "ok"),
        case("trailing_byte", "the good ack with one byte after the map", good + b"\x00", "malformed"),
        case("extra_key", "the good ack with a key the schema does not have", cbor.dumps(extra), "schema"),
        case("unknown_kind", "kind `config` is reserved, not an ack", altered(kind="config"), "unknown_kind"),
        case("wrong_device", "an ack for another device", backend.receipts_ack("other-pos", to, head, at),
             "wrong_device"),
        case("unknown_key", "signed by a key other than the backend's", other.receipts_ack(dev, to, head, at),
             "unknown_key"),
        case("bad_signature", "the good ack with `to` raised by one, signature unchanged", altered(to=to + 1),
             "bad_signature"),
    ]


SETTLEMENT_ROW = {
    "acquirer_ref": "ACQ-V00001", "merchant_id": "102310058120001", "terminal_id": "T0000001",
    "rrn": "000000000001", "auth_code": "000001", "txn_time": 1764115260000, "kind": "sale",
    "amount": 1001, "fee": 6, "settled_amount": 995, "settled_at": 1764201600000, "mcc": "5812",
    "region": "2900",
}


def settlement_ack_cases(dev, seq):
    backend = signer_of(BACKEND_SEED)
    kid = AckSigner(backend).kid
    at = 1764205200000
    unknown_row = dict(SETTLEMENT_ROW, acquirer_ref="ACQ-R1", rrn=None, auth_code=None, kind="refund",
                       amount=-500, fee=0, settled_amount=-500, mcc=None, region=None, merchant_id=None)

    def ack(ack_id, ack_seq, row, n):
        return settlement_ack.encode(dev, ack_id, at, ack_seq, row, kid, backend.sign, n)

    def case(name, meaning, payload, expect):
        msg = cbor.loads(payload)
        signed = settlement_ack.signed_bytes(msg).hex() if "n" in msg else None
        return {"name": name, "spec": "7.8.2", "meaning": meaning, "hex": payload.hex(), "decoded": plain(msg),
                "signed": signed, "expect": expect}

    good = ack(bytes(range(16)), seq, SETTLEMENT_ROW, 1)
    v1 = cbor.loads(good)
    del v1["n"]
    v1["sig"] = backend.sign(cbor.dumps(["daozhang/settlement-ack/v1", dev, v1["id"], at, seq, SETTLEMENT_ROW,
                                         kid]))
    swapped = cbor.loads(good)
    swapped["n"] = 2
    return [
        case("matched", "delivery 1: the acquirer settled sale V00001 (journal seq %d), fee 6 fen" % seq, good,
             "ok"),
        case("unmatched_refund", "delivery 2: a refund row the backend matched to no receipt (seq null)",
             ack(bytes(range(16, 32)), None, unknown_row, 2), "ok"),
        case("version_1", "the same settlement signed the v1 way, without `n`: refused", cbor.dumps(v1),
             "schema"),
        case("renumbered", "the matched ack with `n` changed to 2: `n` is signed", cbor.dumps(swapped),
             "bad_signature"),
    ]


def settlement_batch_case(dev, acks):
    payload = settlement_delivery.encode_batch(dev, acks)
    return {"name": "batch", "spec": "7.8.7", "meaning": "an unsigned envelope carrying %d signed settlement "
            "acks, each checked on its own" % len(acks), "hex": payload.hex(), "acks": [a.hex() for a in acks],
            "expect": "ok"}


# -- up: alerts and status (SPEC 6.2, 7.8.4, 7.8.7) -------------------------------------


def alert_actions(at):
    """Real transitions of the alert machine: two overdue sales raised, one settled."""
    machine = alerts.AlertMachine("CNY")
    out = []
    for n, amount in ((1, 1001), (2, 1002)):
        out += machine.observe({"kind": "settlement_overdue", "key": "V%05d" % n, "active": True, "at": at,
                                "since": at - 3600000, "escalate_at": at + 86400000, "amount": amount,
                                "detail": None})
    out += machine.observe({"kind": "settlement_overdue", "key": "V00001", "active": False, "at": at + 60000})
    return machine, out


def alert_cases(dev, at):
    machine, actions = alert_actions(at)
    journaled = [dict(a, seq=40 + i) for i, a in enumerate(actions)]
    batch = cbor.dumps({"v": 1, "dev": dev, "at": at + 60000, "alerts": journaled})
    single = cbor.dumps({"v": 1, "dev": dev, "at": at, "alert": journaled[0]})
    return [
        {"name": "batch", "spec": "6.2, 7.8.4", "meaning": "%d alert transitions in journal order, each with "
         "the seq of its type 3 record" % len(journaled), "hex": batch.hex(), "decoded": plain(cbor.loads(batch)),
         "expect": "ok"},
        {"name": "single", "spec": "6.2", "meaning": "one transition alone ({\"alert\": map})", "hex": single.hex(),
         "decoded": plain(cbor.loads(single)), "expect": "ok"},
    ], machine


def status_cases(dev, at, machine):
    summary = machine.status_summary(at + 60000)
    online = {"alerts": {"firing": summary["firing"], "pending": summary["pending"], "worst": summary["worst"],
                         "display": summary["display"]}, "settle_n": 2, "online_since": at - 5000}
    payloads = [
        ("offline_will", "the last will the broker publishes when the agent vanishes: `at` 0",
         msgs.encode_status(dev, "offline", 0)),
        ("online_counters", "online, with the sync counters (no settlement watchdog)",
         msgs.encode_status(dev, "online", at, {"c": {"acked": 34, "backlog": 0, "published": 36, "rejected": 1,
                                                      "reconnects": 2}})),
        ("online_watchdog", "online, with the alert summary, the settlement cursor settle_n (7.8.7) and when "
         "this connection began", msgs.encode_status(dev, "online", at + 60000, online)),
        ("journal_damaged", "online, journal refused to open (3.9): degraded mode",
         msgs.encode_status(dev, "online", at, {"journal": "damaged"})),
    ]
    return [{"name": name, "spec": "6.2, 6.8", "meaning": meaning, "hex": p.hex(), "decoded": plain(cbor.loads(p)),
             "expect": "ok"} for name, meaning, p in payloads]


def agent_status_case(image, now_ms):
    """`daozhang agent status`'s view of a journal (SPEC 6.8), over the journal vector's image."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "journal.dzj")
        with open(path, "wb") as f:
            f.write(image)
        view = journal_sync_view(path, now_ms)
    return {"name": "journal_view", "spec": "6.8", "now_ms": now_ms, "json": view, "expect": "ok",
            "meaning": "the journal part of `agent status --json` for journal.img.hex at now_ms, no ack anchor: "
                       "backlog = next_seq - acked, the age of record `acked`, fill = unreleased segments / all"}


# -- the POS intake (SPEC 5.1-5.3) ------------------------------------------------------


def intake_stream_cases(sale):
    submit = intake_frames.encode({"v": 1, "id": 17, "op": "submit", "txn": sale})
    ping = intake_frames.encode({"id": "a1", "op": "ping"})

    def raw(body):
        return len(body).to_bytes(4, "big") + body

    streams = [
        ("submit", "a submit request (5.2) for sale V00001", submit),
        ("ping_then_submit", "two requests on one connection, answered in order", ping + submit),
        ("duplicate_key", "a body repeating `id`: bad_json, not fatal; the next frame is read",
         raw(b'{"id":1,"id":2,"op":"ping"}') + ping),
        ("not_an_object", "a JSON array: bad_json", raw(b"[1,2]")),
        ("not_utf8", "a body that is not UTF-8: bad_json", raw(b'{"id":"\xff"}')),
        ("empty_frame", "length 0: fatal, the connection closes", b"\x00\x00\x00\x00" + ping),
        ("too_large", "length 65537: fatal, no resynchronisation", b"\x00\x01\x00\x01{"),
        ("truncated", "the stream ends 3 bytes into a 10-byte body", b"\x00\x00\x00\x0a{\"i"),
    ]
    return [{"name": name, "spec": "5.1, 5.2", "meaning": meaning, "hex": data.hex(),
             "events": kit.intake_events(data, len(data))} for name, meaning, data in streams]


def intake_response_cases(dev, appended, code):
    rec = appended["V00001"]
    result = {"dev": dev, "seq": rec.seq, "hash": rec.hash.hex(), "checkpoint_seq": rec.checkpoint_seq,
              "receipt_code": code, "signed": True, "clock_trusted": True, "duplicate": False}
    responses = [
        ("submitted", "the receipt of a committed sale (5.3)", intake_frames.ok_response(17, result)),
        ("pong", "the answer to ping", intake_frames.ok_response("a1", {"pong": True, "dev": dev})),
        ("refused", "a sale refused for a card number in `note` (4.4): the field named, the value never echoed",
         intake_frames.error_response(18, "pan_refused", "note: holds a card number", "note")),
        ("unreadable", "a frame that is not a request: id null",
         intake_frames.error_response(None, "bad_json", "frame body is not UTF-8 JSON")),
    ]
    return [{"name": name, "spec": "5.3", "meaning": meaning, "hex": data.hex(), "text": data[4:].decode("utf-8")}
            for name, meaning, data in responses]


# -- the USB service port (SPEC 8.1-8.3) ------------------------------------------------


def service_frame_cases():
    F = service_frames.Frame
    frames = [
        ("info", "REQUEST seq 1: the device's identity and geometry", F(service_frames.REQUEST, 1, {"cmd": "info"})),
        ("read", "REQUEST seq 5: 32 bytes of the journal from offset 4096, in session 00..0f",
         F(service_frames.REQUEST, 5, {"cmd": "read", "session": bytes(range(16)), "offset": 4096, "length": 32})),
        ("read_answer", "RESPONSE seq 5: the bytes asked for",
         F(service_frames.RESPONSE, 5, {"offset": 4096, "data": b"DZSG" + bytes(28)})),
        ("auth_required", "ERROR seq 6: a command without a session",
         F(service_frames.ERROR, 6, {"code": "auth_required", "message": "authenticate first"})),
        ("nak", "NAK seq 5: the last frame arrived with a bad CRC", F(service_frames.NAK, 5, {"reason": "crc"})),
    ]
    return [{"name": name, "spec": "8.1, 8.3", "meaning": meaning, "hex": service_frames.encode_frame(f).hex(),
             "type": f.type, "seq": f.seq, "payload": plain(f.payload)} for name, meaning, f in frames]


def service_stream_cases(frames):
    info = bytes.fromhex(frames[0]["hex"])
    nak = bytes.fromhex(frames[4]["hex"])
    torn_crc = info[:-1] + bytes([info[-1] ^ 0xFF])
    head = info[:5] + b"\x01" + info[6:12]                       # flags 1, header CRC made good again
    head += service_frames.crc32(head).to_bytes(4, "big")
    body = head + info[16:-4]
    flagged = body + service_frames.crc32(body).to_bytes(4, "big")
    streams = [
        ("garbage_then_frame", "line noise before a frame: one garbage event, then the frame", b"\x00\xffDZ" + info),
        ("bad_crc_then_frame", "a frame with a bad CRC, then a good one: rejected, resynchronised on the next "
         "magic", torn_crc + nak),
        ("nonzero_flags", "the reserved flags byte set (both CRCs good): rejected", flagged + nak),
    ]
    return [{"name": name, "spec": "8.2", "meaning": meaning, "hex": data.hex(), "events": plain(kit.service_events(data))}
            for name, meaning, data in streams]


# -- salvage (SPEC 3.14) and the quarantine file (3.15) ---------------------------------


def salvage_case(dev, sale, device_seed, created_ms, boot_id):
    """A journal whose first sale rotted, salvaged as `daozhang journal salvage` does (agent/journal_salvage.py
    stamps the release's version, so the vector follows its three steps with version "vectors")."""
    signer = signer_of(device_seed)
    geo = layout.Geometry(8192, 3, bytes(range(0x20, 0x30)), dev, created_ms)
    storage = ring_storage.MemoryStorage(geo.encode() + bytes(geo.file_size - layout.SUPERBLOCK_SIZE))
    ring = ring_storage.open_ring(storage)
    steps = [[(record.TYPE_BOOT, {"reason": "init", "version": "vectors", "cut_bytes": 0, "cut_records": 0,
                                  "cut_offset": 0, "voided_segments": []})],
             [(record.TYPE_TRANSACTION, sale(1))], [(record.TYPE_TRANSACTION, sale(2))]]
    offsets = []
    for k, entries in enumerate(steps):
        clock = Clock(created_ms + 1000 * k, boot_id, 500 + 1000 * k)
        offsets.append(ring_storage.commit(storage, ring, entries, clock, signer)[0].offset)
    storage.data[offsets[1] + 30] ^= 0xFF                      # bit rot in sale 1, the head segment
    base = geo.segment_offset(0)
    scan = recovery.scan_segment(bytes(storage.data[base:base + geo.segment_size]), 0, 0, record.ZERO_HASH)
    aside = bytes(storage.data[base + scan.tail:base + scan.dirty_end])
    lost = [r.seq for r in recovery.valid_frames(aside, 0, len(aside))]
    storage.quarantine(base + scan.tail, aside)                 # 1. kept
    storage.pwrite(base + scan.tail, bytes(len(aside)))         # 2. zeroed
    ring = Ring(geo)
    ring.recover([storage.pread(geo.segment_offset(i), layout.SEGMENT_HEADER_SIZE) for i in range(3)],
                 lambda i: storage.pread(geo.segment_offset(i), geo.segment_size))
    lost_first, lost_last = scan.next_seq, max([scan.next_seq] + lost)
    ring.next_seq = lost_last + 1                               # 3. no seq reused
    payload = {"lost_first": lost_first, "lost_last": lost_last, "offset": base + scan.tail, "length": len(aside),
               "sha256": hashlib.sha256(aside).digest(), "version": "vectors"}
    salvaged = ring_storage.commit(storage, ring, [(record.TYPE_SALVAGE, payload)],
                             Clock(created_ms + 5000, boot_id, 5500), signer)[0]
    image = bytes(storage.data)
    frame = image[salvaged.offset:salvaged.offset + record.decode_at(image, salvaged.offset).size]
    entry = quarantine_entry.encode(*storage.quarantined[0])
    return {
        "spec": "3.14, 3.15",
        "meaning": "sale 1's record rotted (one byte flipped) in the head segment; salvage set aside records "
                   "%d..%d (quarantine entry below) and committed a salvage record with seq %d"
                   % (lost_first, lost_last, salvaged.seq),
        "salvage_record": {"hex": frame.hex(), "seq": salvaged.seq, "payload": plain(payload)},
        "quarantine_entry": {"hex": entry.hex(), "offset": base + scan.tail, "length": len(aside),
                             "sha256": hashlib.sha256(aside).hexdigest(),
                             "meaning": "\"DZQ1\", journal offset (8 bytes), length (4), SHA-256 (32), the bytes"},
        "image_sha256": hashlib.sha256(image).hexdigest(),
        "expect": "Salvaged",
    }, image


def build(journal, image, appended, sale, device_seed, boot_id):
    """Every message vector; `journal` is the journal vector dict and `image` its bytes, `appended`
    {pos_txn_id: Appended}."""
    dev = journal["device_id"]
    kept = journal["records_kept"]
    to, head = kept[-1]["seq"] + 1, bytes.fromhex(kept[-1]["hash"])
    at = journal["created_ms"] + 86400000
    receipts = receipt_cases(dev, appended)
    settlements = settlement_ack_cases(dev, appended["V00001"].seq)
    alert_messages, machine = alert_cases(dev, at)
    service = service_frame_cases()
    salvage, _ = salvage_case(dev, sale, device_seed, journal["created_ms"], boot_id)
    return {
        "spec": "docs/SPEC.md 3.14-3.15, 5, 6, 7.8, 8; the journal itself is journal.json",
        "note": "values: {\"$bytes\": hex} stands for a byte string; keys: device = journal.json key_seed, "
                "backend below",
        "backend_seed": BACKEND_SEED.hex(),
        "backend_public": signer_of(BACKEND_SEED).public_bytes.hex(),
        "other_seed": OTHER_SEED.hex(),
        "device_id": dev,
        "receipt_codes": receipts,
        "receipt_acks": receipts_ack_cases(dev, to, head, at),
        "settlement_acks": settlements,
        "settlement_batches": [settlement_batch_case(dev, [bytes.fromhex(c["hex"]) for c in settlements[:2]])],
        "alert_messages": alert_messages,
        "status_messages": status_cases(dev, at, machine),
        "agent_status": [agent_status_case(image, at)],
        "intake_streams": intake_stream_cases(sale(1)),
        "intake_responses": intake_response_cases(dev, appended, receipts[0]["code"]),
        "service_frames": service,
        "service_streams": service_stream_cases(service),
        "salvage": salvage,
    }
