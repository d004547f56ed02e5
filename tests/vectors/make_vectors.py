"""Regenerate tests/vectors/{cbor,journal,messages}.json and journal.img.hex from the writer.

    python tests/vectors/make_vectors.py          # rewrite the files
    python tests/vectors/make_vectors.py --check  # exit 1 if they differ

The vectors are the spec's examples made concrete (SPEC 2, 3; messages.json,
made by message_vectors.py, the rest: 3.14-3.15, 5, 6, 7.8, 8): a change to
any byte the writer produces shows up here, and must come with a SPEC change.
A test runs --check; MicroPython and the independent verifier read them.
"""

import hashlib
import json
import os
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daozhang.agent.core.journal import layout, record, ring_storage
from daozhang.agent.core.journal.ring import Clock
from daozhang.signing import Ed25519Signer

import message_vectors  # beside this file (the script's directory is on sys.path)

HERE = os.path.dirname(os.path.abspath(__file__))

KEY_SEED = bytes(range(32))
DEVICE_ID = "vector-pos-1"
JOURNAL_ID = bytes(range(0x10, 0x20))
CREATED_MS = 1764115200000  # 2025-11-26T00:00:00Z
SEGMENT_SIZE = 8192
SEGMENT_COUNT = 3
BOOT_ID = bytes.fromhex("0102030405060708")


def sale(n, pad=0):
    return {
        "kind": "sale", "pos_txn_id": "V%05d" % n, "time": "2025-11-26T08:%02d:00+08:00" % (n % 60),
        "amount": 1000 + n, "currency": "CNY", "card": "622202******%04d" % n, "card_type": "debit",
        "auth_code": "%06d" % n, "rrn": "%012d" % n, "merchant_id": "102310058120001",
        "terminal_id": "T0000001", "mcc": "5812", "settlement": "T1", "memo": "x" * pad,
    }


def commits():
    """The scripted commits: a boot, single and grouped sales, an outage and its recovery,
    cursor moves, and enough sales to wrap the three-segment ring once."""
    script = [
        {"signed": True, "entries": [[record.TYPE_BOOT, {"reason": "init", "version": "vectors",
                                                          "cut_bytes": 0, "cut_records": 0, "cut_offset": 0,
                                                          "voided_segments": []}]]},
        {"signed": True, "entries": [[record.TYPE_TRANSACTION, sale(1)]]},
        {"signed": True, "entries": [[record.TYPE_TRANSACTION, sale(2)], [record.TYPE_TRANSACTION, sale(3)],
                                     [record.TYPE_TRANSACTION, sale(4)]]},
        {"signed": False, "entries": [[record.TYPE_TRANSACTION, sale(5)]]},
        {"signed": False, "entries": [[record.TYPE_CLOCK, {"event": "step_back", "wall_ms": CREATED_MS,
                                                           "last_wall_ms": CREATED_MS + 5000}]]},
        {"signed": True, "entries": [[record.TYPE_TRANSACTION, sale(6)]], "acked": 8, "released": 8},
        {"signed": True, "entries": [], "acked": 13, "released": 10},
    ]
    for n in range(7, 34):
        entry = {"signed": True, "entries": [[record.TYPE_TRANSACTION, sale(n, pad=300)]]}
        if n in (14, 26):
            entry["release_all"] = True  # the backend acked and all sales settled
        script.append(entry)
    return script


class RecordingSigner:
    def __init__(self, key):
        self.inner = Ed25519Signer(key)
        self.alg, self.kid = self.inner.alg, self.inner.kid
        self.messages = []

    def sign(self, message):
        self.messages.append(message.hex())
        return self.inner.sign(message)


def build(appended=None):
    """The journal vectors and image; `appended`, if given, gets {pos_txn_id: Appended} of every sale."""
    key = Ed25519PrivateKey.from_private_bytes(KEY_SEED)
    signer = RecordingSigner(key)
    geo = layout.Geometry(SEGMENT_SIZE, SEGMENT_COUNT, JOURNAL_ID, DEVICE_ID, CREATED_MS)
    storage = ring_storage.MemoryStorage(geo.encode() + bytes(geo.file_size - layout.SUPERBLOCK_SIZE))
    ring = ring_storage.open_ring(storage)
    script = commits()
    records = []
    for k, step in enumerate(script):
        step["wall_ms"] = CREATED_MS + 1000 * k
        step["mono_ms"] = 500 + 1000 * k
        clock = Clock(step["wall_ms"], BOOT_ID, step["mono_ms"])
        entries = [tuple(e) for e in step["entries"]]
        if step.pop("release_all", False):
            step["acked"] = step["released"] = ring.next_seq
        results = ring_storage.commit(storage, ring, entries, clock, signer if step["signed"] else None,
                                step.get("acked"), step.get("released"))
        for entry, r in zip(entries, results):
            if appended is not None and entry[0] == record.TYPE_TRANSACTION:
                appended[entry[1]["pos_txn_id"]] = r
        for r in results:
            records.append({"seq": r.seq, "offset": r.offset, "hash": r.hash.hex()})
        last = results[-1] if results else None
        step["checkpoint_seq"] = ring.next_seq - 1
        step["head_hash"] = ring.head_hash.hex()
        if last is not None:
            step["audit_paths"] = [[p.hex() for p in r.audit_path] for r in results]
    image = bytes(storage.data)
    vectors = {
        "spec": "docs/SPEC.md sections 2-3, format version 1",
        "key_seed": KEY_SEED.hex(),
        "public_key": signer.inner.public_bytes.hex(),
        "kid": signer.kid.hex(),
        "device_id": DEVICE_ID,
        "journal_id": JOURNAL_ID.hex(),
        "created_ms": CREATED_MS,
        "segment_size": SEGMENT_SIZE,
        "segment_count": SEGMENT_COUNT,
        "boot_id": BOOT_ID.hex(),
        "commits": script,
        "signed_messages": signer.messages,
        "records_kept": records_kept(image, geo),
        "next_seq": ring.next_seq,
        "image_sha256": hashlib.sha256(image).hexdigest(),
    }
    return vectors, image


def records_kept(image, geo):
    """Every record still in the image after the wrap: seq, offset, frame hash, type."""
    out = []
    for index in range(geo.segment_count):
        base = geo.segment_offset(index)
        seg = image[base:base + geo.segment_size]
        parsed = layout.decode_segment_header(seg, index, geo.journal_id)
        if parsed is None:
            continue
        off = layout.SEGMENT_HEADER_SIZE
        while True:
            rec = record.decode_at(seg, off)
            if rec is None:
                break
            out.append({"seq": rec.seq, "type": rec.type, "offset": base + off, "hash": rec.hash.hex(),
                        "flags": rec.flags})
            off += rec.size
    out.sort(key=lambda r: r["seq"])
    return out


CBOR_VALID = [
    (0, "00"), (23, "17"), (24, "1818"), (255, "18ff"), (256, "190100"), (65536, "1a00010000"),
    (2 ** 32, "1b0000000100000000"), (-1, "20"), (-25, "3818"), (-(2 ** 64), "3bffffffffffffffff"),
    (b"", "40"), ({"$bytes": "0102"}, "420102"), ("", "60"), ("到账", "66e588b0e8b4a6"),
    ([], "80"), ([1, [2, 3]], "8201820203"), ({}, "a0"), ({"b": 1, "a": 2, "aa": 3}, "a3616102616201626161 03".replace(" ", "")),
    ({"10": 1, "2": 2}, "a2613202623130 01".replace(" ", "")), (True, "f5"), (False, "f4"), (None, "f6"),
]

CBOR_INVALID = [
    ("1817", "non-shortest head"), ("190017", "non-shortest head"), ("f93c00", "float"),
    ("fb3ff0000000000000", "float"), ("c11a5f000000", "tag"), ("5f4100ff", "indefinite length"),
    ("a2616101616102", "duplicate key"), ("a2616202616101", "unsorted keys"), ("0000", "trailing byte"),
    ("62c328", "invalid UTF-8"), ("f7", "undefined"), ("1c", "reserved additional info"),
    ("9a00010000", "truncated array"), ("", "empty input"),
]


def cbor_vectors():
    return {"valid": [{"value": {"$bytes": ""} if v == b"" else v, "cbor": h} for v, h in CBOR_VALID],
            "invalid": [{"cbor": h, "why": w} for h, w in CBOR_INVALID],
            "note": "values: {\"$bytes\": hex} stands for a byte string"}


def outputs():
    appended = {}
    vectors, image = build(appended)
    messages = message_vectors.build(vectors, image, appended, sale, KEY_SEED, BOOT_ID)
    return {
        "messages.json": json.dumps(messages, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
        "journal.json": json.dumps(vectors, indent=1, sort_keys=True) + "\n",
        "journal.img.hex": "\n".join(image[i:i + 64].hex() for i in range(0, len(image), 64)) + "\n",
        "cbor.json": json.dumps(cbor_vectors(), indent=1, sort_keys=True, ensure_ascii=False) + "\n",
    }


def main(argv):
    check = "--check" in argv
    stale = []
    for name, text in outputs().items():
        path = os.path.join(HERE, name)
        current = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if current != text:
            stale.append(name)
            if not check:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
    if check and stale:
        print("vectors differ from the writer: " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
