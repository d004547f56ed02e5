"""Reading a journal file from SPEC 3 alone: layout, frames, records.

An independent reader (it imports nothing of the writer): the superblock
(3.1), segment headers (3.2), record frames (3.3, frames.py) and bodies (3.4).  The
verifier (verify.py) builds its checks on these functions; `iter_records`
is the plain decoder behind `journal show` and `journal export`, and raises
only the verifier's own finding classes (errors.py).
"""

import mmap
import os
import re
import struct
from collections import namedtuple
from hashlib import sha256

from daozhang.host_tools.verify import errors
from daozhang.host_tools.verify.cbor import CborProblem, check_flat_payload, decode_roundtrip
from daozhang.host_tools.verify.frames import (FRAME_HEADER, FRAME_OVERHEAD, crc32, frame_head, frame_problem,
                                              next_frame, valid_frames)

SUPERBLOCK_SIZE = 4096
SUPERBLOCK_MAGIC = b"DZJRNL01"
FORMAT_VERSIONS = (1, 2)     # 2 declares a sector size at offset 10 (SPEC 3.1)
SECTOR_SIZES = (512, 1024, 2048, 4096)
SEGMENT_MAGIC = b"DZSG"
SEGMENT_HEADER_SIZE = 96
ZERO_HASH = bytes(32)
FLAG_OUTAGE = 0x01

# SPEC 3.5
TYPE_NAMES = {1: "transaction", 2: "settlement_ack", 3: "alert", 4: "boot", 5: "clock",
              6: "config", 7: "key_rotation", 8: "checkpoint", 9: "sync_ack", 10: "padding", 11: "salvage"}
TYPE_CHECKPOINT = 8
TYPE_KEY_ROTATION = 7
TYPE_TRANSACTION = 1
TYPE_BOOT = 4
TYPE_PADDING = 10
TYPE_SALVAGE = 11

_DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")   # SPEC 3.1
_U64 = 1 << 64

Superblock = namedtuple("Superblock", "segment_size segment_count journal_id device_id created_ms sector_size")
SegmentHeader = namedtuple("SegmentHeader", "index offset first_seq prev_hash")
RecordView = namedtuple("RecordView", "seq type type_name flags hash offset wall_ms boot_id mono_ms payload prev")


class LayoutProblem(Exception):
    """Internal: why a superblock or header is invalid (becomes a finding)."""


def is_zero(buf):
    """True if every byte is zero (fast: compares with calloc'd zeros)."""
    return buf == bytes(len(buf))


def parse_superblock(block):
    """SPEC 3.1: a Superblock, or LayoutProblem saying which field is wrong."""
    if len(block) < SUPERBLOCK_SIZE:
        raise LayoutProblem("file is %d bytes, shorter than the %d-byte superblock" % (len(block), SUPERBLOCK_SIZE))
    if block[0:8] != SUPERBLOCK_MAGIC:
        raise LayoutProblem("magic %r, expected %r" % (bytes(block[0:8]), SUPERBLOCK_MAGIC))
    version, reserved, seg_size, seg_count = struct.unpack_from(">HHII", block, 8)
    if version not in FORMAT_VERSIONS:
        raise LayoutProblem("format version %d, expected 1 or 2" % version)
    stored = struct.unpack_from(">I", block, 109)[0]
    actual = crc32(block[0:109])
    if stored != actual:
        raise LayoutProblem("CRC 0x%08x, computed 0x%08x" % (stored, actual))
    if version == 1 and reserved != 0:
        raise LayoutProblem("reserved field %d, expected 0" % reserved)
    if version == 2 and reserved not in SECTOR_SIZES:
        raise LayoutProblem("sector size %d, expected one of %s" % (reserved, SECTOR_SIZES))
    if seg_size % 4096 or not 8192 <= seg_size <= 64 * 1024 * 1024:
        raise LayoutProblem("segment size %d: expected a multiple of 4096 in 8192..64 MiB" % seg_size)
    if not 2 <= seg_count <= 65536:
        raise LayoutProblem("segment count %d: expected 2..65536" % seg_count)
    id_len = block[36]
    raw_id = bytes(block[37:101])
    if not 1 <= id_len <= 64 or any(raw_id[id_len:]):
        raise LayoutProblem("device id length %d or its zero padding is wrong" % id_len)
    try:
        device_id = raw_id[:id_len].decode("ascii")
    except UnicodeDecodeError:
        device_id = ""
    if not _DEVICE_ID.match(device_id):
        raise LayoutProblem("device id %r is not 1-64 of A-Z a-z 0-9 . _ - starting with a letter "
                            "or digit" % raw_id[:id_len])
    if not is_zero(block[113:SUPERBLOCK_SIZE]):
        raise LayoutProblem("padding bytes 113..4095 are not zero")
    created_ms = struct.unpack_from(">Q", block, 101)[0]
    return Superblock(seg_size, seg_count, bytes(block[20:36]), device_id, created_ms, reserved or None)


def parse_segment_header(header, index, offset, journal_id):
    """SPEC 3.2: None for a free (all-zero) header, a SegmentHeader for one in use,
    LayoutProblem for anything else.  A foreign journal id raises ForeignHeader."""
    if not any(header):
        return None
    if len(header) < SEGMENT_HEADER_SIZE:
        raise LayoutProblem("header cut short at %d bytes" % len(header))
    if header[0:4] != SEGMENT_MAGIC:
        raise LayoutProblem("magic %r, expected %r" % (bytes(header[0:4]), SEGMENT_MAGIC))
    stored = struct.unpack_from(">I", header, 64)[0]
    actual = crc32(header[0:64])
    if stored != actual:
        raise LayoutProblem("CRC 0x%08x, computed 0x%08x" % (stored, actual))
    own_index, first_seq = struct.unpack_from(">IQ", header, 4)
    if own_index != index:
        raise LayoutProblem("index field %d at position %d" % (own_index, index))
    if any(header[68:96]):
        raise LayoutProblem("padding bytes 68..95 are not zero")
    prev_hash = bytes(header[16:48])
    if first_seq == 0 and prev_hash != ZERO_HASH:
        raise LayoutProblem("first_seq 0 with a non-zero prev_hash")
    if header[48:64] != journal_id:
        raise ForeignHeader("journal id %s, this journal is %s" % (bytes(header[48:64]).hex(), journal_id.hex()))
    return SegmentHeader(index, offset, first_seq, prev_hash)


class ForeignHeader(LayoutProblem):
    """Internal: a well-formed header of another journal."""


_FDS = {}      # id(mapped file) -> its fd, for hole-aware zero checks


def load(source):
    """(bytes-like buffer, close function) for a path or bytes; read-only.

    A file is mapped, never read whole: memory stays bounded by what a walk
    touches (see `release`), and holes of a sparse file are skipped by
    `zero_span` without reading them."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), lambda: None
    path = os.fspath(source)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    size = os.lseek(fd, 0, os.SEEK_END)      # st_size is 0 on a block device
    if size == 0:
        os.close(fd)
        return b"", lambda: None
    mapped = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    _FDS[id(mapped)] = fd

    def close():
        _FDS.pop(id(mapped), None)
        mapped.close()
        os.close(fd)
    return mapped, close


def _next_data(data, offset):
    """Offset of the first byte at or after `offset` not in a hole, or None if
    unknown (not a sparse-aware file); len(data) if only holes follow."""
    fd = _FDS.get(id(data))
    if fd is None or not hasattr(os, "SEEK_DATA"):
        return None
    try:
        return os.lseek(fd, offset, os.SEEK_DATA)
    except OSError:          # ENXIO: no data after offset
        return len(data)


def zero_span(data, start, end, chunk=1 << 20):
    """True if data[start:end] is all zero; holes are skipped unread, the rest
    is compared chunk by chunk and its pages released (bounded memory)."""
    pos = start
    while pos < end:
        nxt = _next_data(data, pos)
        if nxt is not None:
            if nxt >= end:
                return True
            if nxt > pos:
                pos = nxt
        stop = min(end, pos + chunk)
        if not is_zero(data[pos:stop]):
            return False
        release(data, pos, stop)
        pos = stop
    return True


def release(data, start, end):
    """Let the kernel drop the mapped pages of data[start:end] (a walk's
    memory stays bounded by a segment, not the journal)."""
    if isinstance(data, mmap.mmap) and hasattr(data, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        lo = start // mmap.PAGESIZE * mmap.PAGESIZE
        if end > lo:
            data.madvise(mmap.MADV_DONTNEED, lo, min(end, len(data)) - lo)


def check_geometry_fits(sb, size):
    """One-line refusal of a superblock whose geometry the file cannot hold."""
    need = SUPERBLOCK_SIZE + sb.segment_count * sb.segment_size
    if size < need:
        raise errors.TruncatedJournal("TruncatedJournal at offset %d: the superblock's geometry (%d segments of %d "
                                      "bytes) needs %d bytes, the file has %d: not this journal's file, or cut short"
                                      % (size, sb.segment_count, sb.segment_size, need, size))


def body_problem(value):
    """SPEC 3.4 shape of a decoded body: None if right, else what is wrong."""
    if type(value) is not list or len(value) != 6:
        return "body is not an array of 6 items"
    seq, prev, wall_ms, boot_id, mono_ms, payload = value
    if type(seq) is not int or not 0 <= seq < _U64:
        return "seq is not a uint"
    if type(prev) is not bytes or len(prev) != 32:
        return "prev is not a 32-byte string"
    if type(wall_ms) is not int or not 0 <= wall_ms < _U64:
        return "wall_ms is not a uint"
    if type(boot_id) is not bytes or len(boot_id) != 8:
        return "boot_id is not an 8-byte string"
    if type(mono_ms) is not int or not 0 <= mono_ms < _U64:
        return "mono_ms is not a uint"
    if type(payload) is not dict:
        return "payload is not a map"
    return None


_CHECKPOINT_FIELDS = (("alg", int), ("kid", bytes), ("dev", str), ("first", int), ("root", bytes),
                      ("acked", int), ("released", int), ("state", int), ("sig", bytes))
_ROTATION_FIELDS = (("alg", int), ("kid", bytes), ("pub", bytes))
_SALVAGE_FIELDS = (("lost_first", int), ("lost_last", int), ("offset", int), ("length", int), ("sha256", bytes))
_PADDING_FIELDS = (("pad", bytes),)


def payload_problem(rtype, payload):
    """SPEC 3.5/3.6/3.8 fields the verifier relies on: None, or what is wrong."""
    if rtype == TYPE_CHECKPOINT:
        fields = _CHECKPOINT_FIELDS
    elif rtype == TYPE_KEY_ROTATION:
        fields = _ROTATION_FIELDS
    elif rtype == TYPE_SALVAGE:
        fields = _SALVAGE_FIELDS
    elif rtype == TYPE_PADDING:
        fields = _PADDING_FIELDS
    else:
        return None
    for name, kind in fields:
        value = payload.get(name)
        if type(value) is not kind or (kind is int and value < 0):
            return "%s payload field %r is %r, expected a %s" % (
                TYPE_NAMES[rtype], name, value, "uint" if kind is int else kind.__name__)
    if rtype == TYPE_CHECKPOINT and len(payload["root"]) != 32:
        return "checkpoint root is %d bytes, expected 32" % len(payload["root"])
    if rtype == TYPE_KEY_ROTATION and len(payload["kid"]) != 8:
        return "key rotation kid is %d bytes, expected 8" % len(payload["kid"])
    return None


def decode_body(rtype, body):
    """(value, None) or (None, (finding kind, message)) for a frame's body."""
    try:
        value = decode_roundtrip(body)
    except CborProblem as exc:
        return None, ("NonCanonicalCbor", str(exc))
    problem = body_problem(value)
    if problem is not None:
        return None, ("BadRecordBody", problem)
    try:
        check_flat_payload(value[5], body)
    except CborProblem as exc:
        return None, ("NonCanonicalCbor", str(exc))
    problem = payload_problem(rtype, value[5])
    if problem is not None:
        return None, ("BadRecordBody", problem)
    return value, None


def superblock_or_finding(data):
    """The journal's Superblock; raises BadSuperblock (a finding) if it is not one."""
    try:
        return parse_superblock(data[0:SUPERBLOCK_SIZE])
    except LayoutProblem as exc:
        raise errors.BadSuperblock("BadSuperblock at offset 0: %s" % exc) from None


def segment_headers(data, sb):
    """[(index, offset, SegmentHeader | None | LayoutProblem)] for every segment present."""
    out = []
    for index in range(sb.segment_count):
        offset = SUPERBLOCK_SIZE + index * sb.segment_size
        if offset >= len(data):
            break
        nxt = _next_data(data, offset)
        if nxt is not None and nxt >= offset + SEGMENT_HEADER_SIZE:
            out.append((index, offset, None))    # a hole: an all-zero, free header, left unread
            continue
        header = data[offset:offset + SEGMENT_HEADER_SIZE]
        try:
            parsed = parse_segment_header(header, index, offset, sb.journal_id)
        except LayoutProblem as exc:
            parsed = exc
        out.append((index, offset, parsed))
    return out


def iter_records(source):
    """Every record of a journal in sequence order, as RecordView tuples.

    A plain decoder for show/export: framing, CRC and CBOR are checked, the
    chain and signatures are not (that is `verify_journal`).  Raises the first
    problem as its finding class, except a torn tail at the end of the newest
    segment (bytes after the last valid frame, as a crash leaves them), where
    the records simply end.
    """
    data, close = load(source)
    try:
        sb = superblock_or_finding(data)
        check_geometry_fits(sb, len(data))
        in_use = []
        for index, offset, parsed in segment_headers(data, sb):
            if isinstance(parsed, ForeignHeader):
                raise errors.ForeignSegment("ForeignSegment at offset %d: %s" % (offset, parsed))
            if isinstance(parsed, LayoutProblem):
                raise errors.BadSegmentHeader("BadSegmentHeader at offset %d: %s" % (offset, parsed))
            if parsed is not None:
                in_use.append(parsed)
        in_use.sort(key=lambda h: h.first_seq)
        for number, header in enumerate(in_use):
            end = min(header.offset + sb.segment_size, len(data))
            pos = header.offset + SEGMENT_HEADER_SIZE
            is_head = number == len(in_use) - 1
            while pos + 2 <= end and data[pos:pos + 2] != b"\x00\x00":
                problem = frame_problem(data, pos, end)
                if problem is not None:
                    if is_head and next_frame(data, pos + 1, end) is None:
                        return      # a torn tail (crash residue): the records end here
                    raise errors.FINDING_CLASSES[problem[0]]("%s at offset %d: %s" % (problem[0], pos, problem[1]))
                rtype, flags, n = frame_head(data, pos)
                frame = data[pos:pos + FRAME_HEADER + n]
                if rtype not in TYPE_NAMES:
                    raise errors.UnknownRecordType("UnknownRecordType at offset %d: type %d" % (pos, rtype))
                value, problem = decode_body(rtype, frame[FRAME_HEADER:])
                if problem is not None:
                    raise errors.FINDING_CLASSES[problem[0]]("%s at offset %d: %s" % (problem[0], pos, problem[1]))
                yield RecordView(value[0], rtype, TYPE_NAMES[rtype], flags, sha256(frame).digest(), pos,
                                 value[2], value[3], value[4], value[5], value[1])
                pos += FRAME_OVERHEAD + n
            release(data, header.offset, end)
    finally:
        close()


def latest_signed_checkpoint(source):
    """(Superblock, seq, frame with CRC) of the newest signed checkpoint (SPEC 3.11).

    Reads the newest segments only, newest first, so `journal head` is quick
    on any journal size.  Raises a finding class if the superblock is bad or
    no signed checkpoint is found.
    """
    data, close = load(source)
    try:
        sb = superblock_or_finding(data)
        in_use = [h for _, _, h in segment_headers(data, sb) if isinstance(h, SegmentHeader)]
        for header in sorted(in_use, key=lambda h: h.first_seq, reverse=True):
            found = None
            end = min(header.offset + sb.segment_size, len(data))
            for pos, rtype, _flags, n in valid_frames(data, header.offset + SEGMENT_HEADER_SIZE, end):
                if rtype == TYPE_CHECKPOINT:
                    stop = pos + FRAME_OVERHEAD + n
                    value, problem = decode_body(rtype, data[pos + FRAME_HEADER:stop - 4])
                    if problem is None and value[5]["alg"] != 0:
                        found = (value[0], bytes(data[pos:stop]))
            if found is not None:
                return sb, found[0], found[1]
        raise errors.TruncatedJournal("TruncatedJournal: no signed checkpoint in the journal")
    finally:
        close()
