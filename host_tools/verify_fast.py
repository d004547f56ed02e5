"""The verifier's fast path: a whole clean segment at the cost of little more than decoding it.

Almost every segment a technician checks is intact, so verify.py first hands
each segment to `FastPath.segment`, which does the same checks as the careful
path but batched:

1. one loop over the frames: magic, length, CRC-32, SHA-256 (the record hash);
2. the bodies joined into CBOR arrays of up to 512 items, decoded with ONE
   cbor2.loads and re-encoded with ONE cbor2.dumps, compared byte for byte
   (SPEC 2 form: shortest heads, definite lengths, no duplicate keys, no
   trailing bytes); per-call overhead is most of cbor2's cost on small items;
3. one loop over the decoded bodies: shape (3.4), types and key order of the
   payload (SPEC 2), sequence and chain, then the shared checkpoint rules.

It never reports a framing or sequence finding itself: at the first thing it
does not like it returns where the careful path must take over (-1: the whole
segment, else the offset of the first record not yet accepted), so findings
and their messages come from one place.  Checkpoint findings are emitted by
the shared `_checkpoint` logic in either path.
"""

import struct
import zlib
from hashlib import sha256

import cbor2

from daozhang.host_tools import journal_reader as reader
from daozhang.host_tools.verify_cbor import STRICT_DECODE, CborProblem, _check_item, _keys_sorted

_unpack_frame_head = struct.Struct(">HBBI").unpack_from
_unpack_crc = struct.Struct(">I").unpack_from
_crc32 = zlib.crc32   # SPEC 3 CRC-32; unsigned on Python 3
_MAGIC = reader.FRAME_MAGIC
_U64 = 1 << 64
_BATCH = 64
_SCALARS = frozenset((int, str, bytes, bool, type(None)))
_CHECKPOINT = reader.TYPE_CHECKPOINT
_ROTATION = reader.TYPE_KEY_ROTATION
_BOOT = reader.TYPE_BOOT
_KNOWN = bytes(1 if t in reader.TYPE_NAMES else 0 for t in range(256))


def _array_head(n):
    return bytes((0x80 | n,)) if n < 24 else (b"\x98" + bytes((n,)) if n < 256 else b"\x99" + struct.pack(">H", n))


class FastPath:
    def __init__(self, walk):
        self.walk = walk
        self.key_tuples = {}     # payload key tuple -> sorted text keys?

    def segment(self, header, end, is_head):
        """Verify one segment; None if done, else where the careful path resumes."""
        walk = self.walk
        data = walk.data
        pos = header.offset + reader.SEGMENT_HEADER_SIZE
        offsets, types, flag_list, hashes, bodies = [], [], [], [], []
        while pos + 12 <= end:
            magic, rtype, flags, n = _unpack_frame_head(data, pos)
            if magic != 0xDA5A:
                break
            stop = pos + 12 + n
            if n > 65536 or n < 1 or stop > end:
                return -1
            frame = data[pos:stop - 4]
            if _crc32(frame) != _unpack_crc(data, stop - 4)[0]:
                return -1
            offsets.append(pos)
            types.append(rtype)
            flag_list.append(flags)
            hashes.append(sha256(frame).digest())
            bodies.append(frame[8:])
            pos = stop
        if pos < end and any(data[pos:end]):
            return -1
        self._start_segment(header)
        for start in range(0, len(bodies), _BATCH):
            part = bodies[start:start + _BATCH]
            joined = _array_head(len(part)) + b"".join(part)
            try:
                decoded = cbor2.loads(joined, **STRICT_DECODE)
                if cbor2.dumps(decoded) != joined:
                    decoded = None
            except Exception:
                decoded = None
            if decoded is None:   # the careful path finds which record and why
                return offsets[start] if start else -1
            # Accept batch by batch, so decoded records die young and memory stays hot.
            k = self._accept_batch(offsets, types, flag_list, hashes, decoded, start)
            if k is not None:
                return offsets[k] if k else -1
        walk.report.bytes_used += pos - header.offset - reader.SEGMENT_HEADER_SIZE
        return None

    def _start_segment(self, header):
        walk = self.walk
        self.header = header
        self.starting = walk.expect_seq is None
        self.accepted = 0

    def _accept_batch(self, offsets, types, flag_list, hashes, values, base):
        """Accept decoded records values[i] = record base+i; None, or the index of the
        first record the careful path must take (nothing of it was accepted)."""
        walk = self.walk
        report = walk.report
        header = self.header
        key_tuples = self.key_tuples
        type_counts = walk.type_counts
        anchor_seq = walk.anchor.seq if walk.anchor is not None else -1
        expect, prev_hash = walk.expect_seq, walk.expect_prev
        if expect is None:
            expect, prev_hash = header.first_seq, header.prev_hash
        elif base == 0 and (expect != header.first_seq or prev_hash != header.prev_hash):
            return 0
        leaves = walk.leaves
        any_flag, all_flag = walk.flagged, not walk.unflagged
        last_is_checkpoint = walk.last_is_checkpoint
        accepted = 0
        resume = None
        last_prev = None
        for i in range(len(values)):
            value = values[i]
            k = base + i
            if type(value) is not list or len(value) != 6:
                resume = k
                break
            seq, prev, wall_ms, boot_id, mono_ms, payload = value
            rtype = types[k]
            flags = flag_list[k]
            if (seq != expect or type(seq) is not int or prev != prev_hash or flags & 0xFE or not _KNOWN[rtype]
                    or type(wall_ms) is not int or not 0 <= wall_ms < _U64 or type(mono_ms) is not int
                    or not 0 <= mono_ms < _U64 or type(boot_id) is not bytes or len(boot_id) != 8
                    or type(payload) is not dict):
                resume = k
                break
            keys = tuple(payload)
            sorted_ok = key_tuples.get(keys)
            if sorted_ok is None:
                sorted_ok = key_tuples[keys] = all(type(key) is str for key in keys) and _keys_sorted(keys)
            if not sorted_ok:
                resume = k
                break
            if not _SCALARS.issuperset(map(type, payload.values())):
                try:
                    _check_item(payload, 1)
                except CborProblem:
                    resume = k
                    break
            if (rtype == _CHECKPOINT or rtype == _ROTATION) and reader.payload_problem(rtype, payload):
                resume = k
                break
            if self.starting and self.accepted == 0 and accepted == 0:
                report.first_seq = seq
            rhash = hashes[k]
            if flags:
                any_flag = True
            else:
                all_flag = False
            type_counts[rtype] += 1
            if seq == anchor_seq:
                walk.anchor_hash = rhash
            accepted += 1
            expect, prev_hash, last_prev = seq + 1, rhash, prev
            if rtype == _CHECKPOINT:
                walk.flagged, walk.unflagged = any_flag, not all_flag
                walk.expect_seq, walk.expect_prev = expect, prev_hash
                walk.report.last_seq = seq
                walk._checkpoint(offsets[k], seq, value, flags, rhash)
                leaves = walk.leaves
                any_flag, all_flag = False, True
                last_is_checkpoint = True
            else:
                leaves.append(rhash)
                last_is_checkpoint = False
                if rtype == _ROTATION:
                    walk._rotation(offsets[k], seq, payload)
                elif rtype == _BOOT:
                    walk.note_boot(payload)
        # write the state back, as if the careful path had accepted these records
        walk.flagged, walk.unflagged = any_flag, not all_flag
        walk.last_is_checkpoint = last_is_checkpoint
        report.records += accepted
        walk.segment_records += accepted
        if accepted:
            walk.expect_seq, walk.expect_prev = expect, prev_hash
            walk.loose = False
            walk.recent = {expect - 1: (prev_hash, last_prev)}
            walk.last_offset = offsets[base + accepted - 1]
            report.last_seq = expect - 1
        self.accepted += accepted
        return resume
