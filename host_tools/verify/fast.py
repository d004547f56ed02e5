"""The verifier's fast path: a clean segment checked in batches, mostly in C.

Almost every segment a technician checks is intact, so verify.py first hands
each segment to `FastPath.segment`, which makes the same checks as the careful
path, batched so that per-record work stays inside C calls:

1. one short loop walks the frame lengths (magic, length); then map() slices
   the frames and computes every CRC-32 and SHA-256 (the record hashes);
2. each body is decoded by cbrrr's strict DAG-CBOR decoder (see fast_decode:
   it refuses every form SPEC 2 forbids but 64-bit floats, which the type
   checks below refuse), and must be read to its last byte;
3. `_batch_clean` checks the batch column-wise (zip(*bodies)): shape (3.4),
   exact types, sequence and chain as whole tuples, and value types (key
   order was the decoder's); `_accept_clean` then only looks at
   checkpoints, rotations and boot records and moves the rest by slices.  A
   batch that is not clean goes record by record (`_accept_batch`), which
   finds the first record the careful path must take.

It never reports a framing or sequence finding itself: at the first thing it
does not like it returns where the careful path must take over (-1: the whole
segment, else the offset of the first record not yet accepted), so findings
and their messages come from one place.  Checkpoint findings are emitted by
the shared `_checkpoint` rules (rules.py) from either path.
"""

import zlib
from collections import Counter
from hashlib import sha256
from itertools import chain, repeat
from operator import add, itemgetter, methodcaller

try:
    # The private module gives (value, bytes read); pinned below 2 in pyproject.
    from cbrrr._cbrrr import decode_dag_cbor as _strict_decode
except ImportError:   # no cbrrr for this platform: every batch takes the careful path
    _strict_decode = None   # (calling None fails inside the try blocks below: same findings, slower)

from daozhang.host_tools.verify import reader
from daozhang.host_tools.verify.cbor import CborProblem, _check_item, _keys_sorted
from daozhang.host_tools.verify.frames import frame_spans

_crc32 = zlib.crc32   # SPEC 3 CRC-32; unsigned on Python 3
_U64 = 1 << 64
_BATCH = 64
_SCALARS = frozenset((int, str, bytes, bool, type(None)))
_CHECKPOINT = reader.TYPE_CHECKPOINT
_ROTATION = reader.TYPE_KEY_ROTATION
_BOOT = reader.TYPE_BOOT
_KNOWN = bytes(1 if t in reader.TYPE_NAMES else 0 for t in range(256))
_LIST_ONLY, _INT_ONLY, _BYTES_ONLY, _DICT_ONLY = {list}, {int}, {bytes}, {dict}
_SIX, _EIGHT = {6}, {8}
_SPECIAL = frozenset((reader.TYPE_CHECKPOINT, reader.TYPE_KEY_ROTATION, reader.TYPE_BOOT))
_digest = methodcaller("digest")
_byte2, _byte3 = itemgetter(2), itemgetter(3)
_value, _length = itemgetter(0), itemgetter(1)


def _refuse_cid(raw):
    raise CborProblem("tag 42 (SPEC 2 forbids tags)")


_REFUSE_CID, _NO_ATJSON = repeat(_refuse_cid), repeat(False)


def fast_decode(body):
    """The value of `body` if the fast path's decoder reads all of it, else None.

    cbrrr decodes DAG-CBOR strictly: shortest heads for every integer, length
    and count; definite lengths; text map keys only, unique and in length-first
    order (for text keys the bytewise order of their encodings, SPEC 2);
    strict UTF-8; no simple values but false/true/null; no floats but 64-bit;
    no tags but 42, which _refuse_cid refuses.  So a body it reads to the end,
    whose items pass the type checks (no float), is the one deterministic
    encoding of its value: what the careful path proves by re-encoding.
    tests/verify/test_fast_decode.py holds the two to that.
    """
    try:
        value, used = _strict_decode(body, _refuse_cid, False)
    except Exception:   # cbrrr raises several types; each means "not for the fast path"
        return None
    return value if used == len(body) else None


class FastPath:
    def __init__(self, walk):
        self.walk = walk
        self.key_tuples = {}     # payload key tuple -> sorted text keys?

    def segment(self, header, end, is_head):
        """Verify one segment; None if done, else where the careful path resumes."""
        walk = self.walk
        data = walk.data
        spans = frame_spans(data, header.offset + reader.SEGMENT_HEADER_SIZE, end)
        if spans is None:
            return -1
        starts, ends, pos = spans      # frame starts; ends of the frames' CRC'd bytes
        if pos < end and not reader.is_zero(data[pos:end]):
            return -1
        # Everything per record from here is C-level map() over the frame list.
        get = data.__getitem__
        frames = list(map(get, map(slice, starts, ends)))
        stored = list(map(int.from_bytes, map(get, map(slice, ends, map(add, ends, repeat(4))))))
        if list(map(_crc32, frames)) != stored:
            return -1
        hashes = list(map(_digest, map(sha256, frames)))
        types = list(map(_byte2, frames))
        flag_list = list(map(_byte3, frames))
        bodies = list(map(get, map(slice, map(add, starts, repeat(8)), ends)))
        self._start_segment(header)
        for start in range(0, len(bodies), _BATCH):
            part = bodies[start:start + _BATCH]
            try:
                # fast_decode over a batch, kept in C: the strict decoder's (value, bytes
                # read) pairs, and bytes read must be each body's length.
                pairs = list(map(_strict_decode, part, _REFUSE_CID, _NO_ATJSON))
                decoded = list(map(_value, pairs)) if list(map(_length, pairs)) == list(map(len, part)) else None
            except Exception:
                decoded = None
            if decoded is None:   # the careful path finds which record and why
                return starts[start] if start else -1
            # Accept batch by batch, so decoded records die young and memory stays hot.
            if self._batch_clean(types, flag_list, hashes, decoded, start):
                k = self._accept_clean(starts, types, flag_list, hashes, decoded, start)
            else:
                k = self._accept_batch(starts, types, flag_list, hashes, decoded, start)
            if k is not None:
                return starts[k] if k else -1
        walk.report.bytes_used += pos - header.offset - reader.SEGMENT_HEADER_SIZE
        return None

    def _batch_clean(self, types, flag_list, hashes, values, base):
        """True if every record of the batch passes the per-record checks of
        _accept_batch, tested column-wise; False sends it to _accept_batch."""
        walk = self.walk
        m = len(values)
        if set(map(type, values)) != _LIST_ONLY or set(map(len, values)) != _SIX:
            return False
        seqs, prevs, walls, boots, monos, payloads = zip(*values)
        expect, prev_hash = walk.expect_seq, walk.expect_prev
        if expect is None:
            expect, prev_hash = self.header.first_seq, self.header.prev_hash
        elif base == 0 and (expect != self.header.first_seq or prev_hash != self.header.prev_hash):
            return False
        if (set(map(type, seqs)) != _INT_ONLY or seqs != tuple(range(expect, expect + m))
                or prevs != (prev_hash,) + tuple(hashes[base:base + m - 1])):
            return False
        if (set(map(type, walls)) != _INT_ONLY or set(map(type, monos)) != _INT_ONLY or min(walls) < 0
                or max(walls) >= _U64 or min(monos) < 0 or max(monos) >= _U64):
            return False
        if set(map(type, boots)) != _BYTES_ONLY or set(map(len, boots)) != _EIGHT:
            return False
        if set(map(type, payloads)) != _DICT_ONLY:
            return False
        # No key-order test: the strict decoder already refused anything but text keys
        # in SPEC 2 order (length first, then bytewise, for text keys the same order).
        if not _SCALARS.issuperset(map(type, chain.from_iterable(map(dict.values, payloads)))):
            return False
        rtypes = types[base:base + m]
        if max(flag_list[base:base + m]) > 1 or not all(map(_KNOWN.__getitem__, rtypes)):
            return False
        if _CHECKPOINT in rtypes or _ROTATION in rtypes:   # a C scan first: most batches hold neither
            for i, rtype in enumerate(rtypes):
                if (rtype == _CHECKPOINT or rtype == _ROTATION) and reader.payload_problem(rtype, payloads[i]):
                    return False
        return True

    def _accept_clean(self, starts, types, flag_list, hashes, values, base):
        """Accept a batch _batch_clean passed: only checkpoints, rotations and boot
        records need a look of their own; the rest is bookkeeping by slices."""
        walk = self.walk
        report = walk.report
        m = len(values)
        rtypes = types[base:base + m]
        flags = flag_list[base:base + m]
        if self.starting and self.accepted == 0:
            report.first_seq = values[0][0]
        type_counts = walk.type_counts
        for rtype, count in Counter(rtypes).items():
            type_counts[rtype] += count
        anchor = walk.anchor
        first_seq = values[0][0]
        if anchor is not None and first_seq <= anchor.seq < first_seq + m:
            walk.anchor_hash = hashes[base + anchor.seq - first_seq]
        any_flag, all_flag = walk.flagged, not walk.unflagged
        done = 0
        for i in [i for i, t in enumerate(rtypes) if t in _SPECIAL] + [m]:
            run = flags[done:i + 1 if i < m else m]
            if run:
                any_flag = any_flag or any(run)
                all_flag = all_flag and all(run)
            if i == m:
                walk.leaves.extend(hashes[base + done:base + m])
                break
            rtype, value, k = rtypes[i], values[i], base + i
            if rtype == _CHECKPOINT:
                walk.leaves.extend(hashes[base + done:k])
                walk.flagged, walk.unflagged = any_flag, not all_flag
                walk.expect_seq, walk.expect_prev = value[0] + 1, hashes[k]
                report.last_seq = value[0]
                walk._checkpoint(starts[k], value[0], value, flags[i], hashes[k])
                any_flag, all_flag = False, True
            else:
                walk.leaves.extend(hashes[base + done:k + 1])
                if rtype == _ROTATION:
                    walk._rotation(starts[k], value[0], value[5])
                else:
                    walk.note_boot(value[5])
            done = i + 1
        last = values[-1]
        walk.flagged, walk.unflagged = any_flag, not all_flag
        walk.last_is_checkpoint = rtypes[-1] == _CHECKPOINT
        report.records += m
        walk.segment_records += m
        walk.expect_seq, walk.expect_prev = last[0] + 1, hashes[base + m - 1]
        walk.loose = False
        walk.recent = {last[0]: (hashes[base + m - 1], last[1])}
        walk.last_offset = starts[base + m - 1]
        report.last_seq = last[0]
        self.accepted += m
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
