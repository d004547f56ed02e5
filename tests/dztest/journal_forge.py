"""An attacker's toolkit for journals, written from docs/SPEC.md §3 alone.

Builds journals record by record, parses any journal image (the real
writer's included) into an editable model, and re-frames, re-chains and
re-signs it as an attacker with a key of their own would.  Tamper tests use
it to fix up CRC, chain, roots and signatures after a mutation, so the only
thing left for the verifier to catch is what no attacker can forge.

Deliberately shares no code with the verifier (host_tools/) or the writer
(agent/): a third reading of the spec.
"""

import os
import struct
import zlib
from hashlib import sha256

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

CHECKPOINT = 8
TRANSACTION = 1
BOOT = 4
KEY_ROTATION = 7
FLAG_OUTAGE = 1
ZERO32 = bytes(32)


def crc32(data):
    return zlib.crc32(data) & 0xFFFFFFFF


def raw_public(private_key):
    return private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def kid_of(private_key):
    return sha256(raw_public(private_key)).digest()[:8]


def pem_public(private_key):
    return private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)


def new_key():
    return Ed25519PrivateKey.generate()


def merkle_root(hashes):
    """SPEC 3.6.1, written recursively as RFC 6962 states it."""
    if not hashes:
        return sha256(b"").digest()
    if len(hashes) == 1:
        return sha256(b"\x00" + hashes[0]).digest()
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return sha256(b"\x01" + merkle_root(hashes[:k]) + merkle_root(hashes[k:])).digest()


def sample_txn(i):
    # A fixed day is safe here: these journals go to the verifier only, which
    # never compares a date with the clock (the live fixtures use dztest.dates).
    return {"kind": "sale", "pos_txn_id": "POS-%06d" % i, "time": "2026-11-26T08:30:00+08:00",
            "amount": 1000 + i, "currency": "CNY", "card": "622588******1234", "card_type": "debit",
            "auth_code": "%06d" % (i % 1000000), "rrn": "%012d" % i, "merchant_id": "123456789012345",
            "terminal_id": "T0000001", "mcc": "5411", "settlement": "T1"}


class Rec:
    """One record, editable; frame() re-frames it with a fresh CRC."""

    def __init__(self, rtype, flags, seq, prev, wall_ms, boot_id, mono_ms, payload, body=None):
        self.rtype, self.flags, self.seq, self.prev = rtype, flags, seq, prev
        self.wall_ms, self.boot_id, self.mono_ms, self.payload = wall_ms, boot_id, mono_ms, payload
        self.raw_body = body      # set to force exact body bytes (non-canonical tests)

    def body(self):
        if self.raw_body is not None:
            return self.raw_body
        return cbor2.dumps([self.seq, self.prev, self.wall_ms, self.boot_id, self.mono_ms, self.payload],
                           canonical=True)

    def unframed(self):
        body = self.body()
        return b"\xda\x5a" + bytes((self.rtype, self.flags)) + struct.pack(">I", len(body)) + body

    def frame(self):
        head = self.unframed()
        return head + struct.pack(">I", crc32(head))

    def hash(self):
        return sha256(self.unframed()).digest()

    def copy(self):
        return Rec(self.rtype, self.flags, self.seq, self.prev, self.wall_ms, self.boot_id, self.mono_ms,
                   dict(self.payload), self.raw_body)


class Segment:
    def __init__(self, index, records):
        self.index = index
        self.records = records
        self.used = None          # bytes used, cached while building (None: recount)


class Journal:
    """A journal model: geometry, and the in-use segments with their records."""

    def __init__(self, device_id="dev-1", segment_size=8192, segment_count=4, journal_id=None, created_ms=1764100000000):
        self.device_id = device_id
        self.segment_size = segment_size
        self.segment_count = segment_count
        self.journal_id = journal_id or os.urandom(16)
        self.created_ms = created_ms
        self.segments = []          # in ring/sequence order, oldest first
        self.boot_id = os.urandom(8)
        self.wall_ms = 1764145800000
        self.mono_ms = 1000
        self.acked = 0
        self.released = 0
        self.outage = False

    # -- building ----------------------------------------------------------

    def records(self):
        return [r for seg in self.segments for r in seg.records]

    def last_record(self):
        return self.segments[-1].records[-1] if self.segments and self.segments[-1].records else None

    def next_seq(self):
        last = self.last_record()
        return last.seq + 1 if last else 0

    def head_hash(self):
        last = self.last_record()
        return last.hash() if last else ZERO32

    def commit(self, entries, key=None, acked=None, released=None, outage=None):
        """Append records [(type, payload)] and a checkpoint, placed as SPEC 3.10 says."""
        outage = key is None if outage is None else outage
        flags = FLAG_OUTAGE if outage else 0
        seq, prev = self.next_seq(), self.head_hash()
        first = seq
        self.tick()
        new = []
        for rtype, payload in entries:
            rec = Rec(rtype, flags, seq, prev, self.wall_ms, self.boot_id, self.mono_ms, payload)
            new.append(rec)
            prev = rec.hash()
            seq += 1
        self.acked = self.acked if acked is None else acked
        self.released = self.released if released is None else released
        state = 1 if outage else (2 if self.outage else 0)
        cp = Rec(CHECKPOINT, flags, seq, prev, self.wall_ms, self.boot_id, self.mono_ms, {})
        cp.payload = self.checkpoint_payload(cp, first, [r.hash() for r in new], state, None if outage else key)
        new.append(cp)
        self.outage = outage
        self._place(new)
        return new

    def tick(self, ms=7):
        self.wall_ms += ms
        self.mono_ms += ms

    def checkpoint_payload(self, cp, first, hashes, state, key, dev=None):
        payload = {"alg": 1 if key else 0, "kid": kid_of(key) if key else b"", "dev": dev or self.device_id,
                   "first": first, "root": merkle_root(hashes), "acked": self.acked, "released": self.released,
                   "state": state, "sig": b""}
        if key is not None:
            payload["sig"] = key.sign(self.signed_message(cp, payload))
        return payload

    @staticmethod
    def signed_message(cp, payload):
        return cbor2.dumps(["daozhang/checkpoint/v1", payload["dev"], cp.seq, cp.prev, cp.wall_ms, cp.boot_id,
                            cp.mono_ms, payload["kid"],
                            payload["alg"], payload["first"], payload["root"], payload["acked"],
                            payload["released"], payload["state"]])

    def _place(self, new):
        size = sum(len(r.frame()) for r in new)
        if self.segments:
            head = self.segments[-1]
            used = getattr(head, "used", None) or 96 + sum(len(r.frame()) for r in head.records)
            if used + size <= self.segment_size:
                head.records.extend(new)
                head.used = used + size
                return
            index = (head.index + 1) % self.segment_count
        else:
            index = 0
        if 96 + size > self.segment_size:
            raise ValueError("commit of %d bytes does not fit a segment" % size)
        self.segments = [s for s in self.segments if s.index != index]   # reuse (attackers ignore `released`)
        self.segments.append(Segment(index, new))

    # -- rendering ---------------------------------------------------------

    def superblock(self):
        dev = self.device_id.encode()
        head = (b"DZJRNL01" + struct.pack(">HHII", 1, 0, self.segment_size, self.segment_count) + self.journal_id
                + bytes((len(dev),)) + dev.ljust(64, b"\x00") + struct.pack(">Q", self.created_ms))
        head += struct.pack(">I", crc32(head))
        return head.ljust(4096, b"\x00")

    def segment_header(self, seg, journal_id=None):
        first = seg.records[0]
        head = (b"DZSG" + struct.pack(">IQ", seg.index, first.seq) + first.prev + (journal_id or self.journal_id))
        return (head + struct.pack(">I", crc32(head))).ljust(96, b"\x00")

    def render(self):
        out = bytearray(self.superblock() + bytes(self.segment_count * self.segment_size))
        for seg in self.segments:
            base = 4096 + seg.index * self.segment_size
            blob = self.segment_header(seg) + b"".join(r.frame() for r in seg.records)
            if len(blob) > self.segment_size:
                raise ValueError("segment %d overflows: %d bytes" % (seg.index, len(blob)))
            out[base:base + len(blob)] = blob
        return bytes(out)

    def offset_of(self, seq):
        for seg in self.segments:
            pos = 4096 + seg.index * self.segment_size + 96
            for r in seg.records:
                if r.seq == seq:
                    return pos
                pos += len(r.frame())
        raise KeyError(seq)

    # -- an attacker's fix-ups ---------------------------------------------

    def rechain(self, key=None, renumber=False, resign_all=False, resign_from=0):
        """Recompute every prev hash, checkpoint first/root, and (with `key`) re-sign
        every signed checkpoint from seq `resign_from` on, as an attacker holding
        `key` would.  Without a key the old signatures stay (and no longer verify
        where the message changed)."""
        prev = None
        seq = None
        hashes = []
        last_cp = None
        for seg in self.segments:
            seg.used = None
        for rec in self.records():
            if prev is not None:
                rec.prev = prev
            if renumber and seq is not None:
                rec.seq = seq
            if rec.rtype == CHECKPOINT and rec.raw_body is None:
                p = rec.payload
                p["first"] = last_cp + 1 if last_cp is not None else p["first"]
                p["root"] = merkle_root(hashes)
                if key is not None and rec.seq >= resign_from and (resign_all or p["alg"] == 1):
                    p["alg"], p["kid"] = 1, kid_of(key)
                    p["sig"] = key.sign(self.signed_message(rec, p))
                last_cp = rec.seq
                hashes = []
            else:
                hashes.append(rec.hash())
            prev = rec.hash()
            seq = rec.seq + 1

    # -- parsing any image -------------------------------------------------

    @classmethod
    def parse(cls, data):
        data = bytes(data)
        seg_size, seg_count = struct.unpack_from(">II", data, 12)
        dev_len = data[36]
        j = cls(data[37:37 + dev_len].decode(), seg_size, seg_count, data[20:36],
                struct.unpack_from(">Q", data, 101)[0])
        segs = []
        for index in range(seg_count):
            base = 4096 + index * seg_size
            header = data[base:base + 96]
            if header[0:4] != b"DZSG":
                continue
            first_seq = struct.unpack_from(">Q", header, 8)[0]
            pos, recs = base + 96, []
            while data[pos:pos + 2] == b"\xda\x5a":
                rtype, flags, n = struct.unpack_from(">BBI", data, pos + 2)
                body = cbor2.loads(data[pos + 8:pos + 8 + n])
                recs.append(Rec(rtype, flags, *body))
                pos += 12 + n
            if recs:
                segs.append((first_seq, Segment(index, recs)))
        segs.sort(key=lambda t: t[0])
        j.segments = [s for _, s in segs]
        last = j.records()[-1] if segs else None
        if last is not None:
            j.wall_ms, j.mono_ms = last.wall_ms, last.mono_ms
            cps = [r for r in j.records() if r.rtype == CHECKPOINT]
            if cps:
                j.acked, j.released = cps[-1].payload["acked"], cps[-1].payload["released"]
                j.outage = cps[-1].payload["state"] == 1
        return j


def build(n_records, key, device_id="dev-1", segment_size=8192, segment_count=None, per_commit=7,
          journal_id=None):
    """A journal of at least `n_records` records (transactions and checkpoints), signed with `key`.

    With segment_count None, just enough segments that none is reused."""
    per_segment_guess = max(1, (segment_size - 96) // 330)
    if segment_count is None:
        segment_count = max(2, n_records // per_segment_guess + 2)
    j = Journal(device_id, segment_size, segment_count, journal_id)
    j.commit([(BOOT, {"reason": "init", "version": "forge", "cut_bytes": 0, "cut_records": 0, "cut_offset": 0,
                      "voided_segments": []})], key)
    i = 0
    while sum(len(s.records) for s in j.segments) < n_records:
        entries = [(TRANSACTION, sample_txn(i + k)) for k in range(per_commit)]
        i += per_commit
        seq = j.next_seq() + per_commit
        j.commit(entries, key, acked=seq, released=seq)
    return j
