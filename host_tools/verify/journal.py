"""The technician's journal verifier: every rule of SPEC 3, every finding.

    report = verify_journal("journal.dzj", ["device.pub"], anchor="head.anchor")
    report.ok, report.findings          # every problem, with seq and offset
    check_journal(...)                  # raises the first finding as its class

An independent reader of docs/SPEC.md §3: it imports nothing of the
writer.  Pure rules over bytes (python-tuf's TrustedMetadataSet habit): the
only I/O is mapping the file read-only, so verify never changes the journal,
the keys or the anchor.

The walk, in the order findings are reported:
1. superblock (3.1): if it is bad nothing else can be read;
2. file size against the geometry; every segment header (3.2);
3. segment order: in-use segments by first_seq must agree with ring order;
4. per segment, oldest first: frames (3.3), CRC, deterministic CBOR, body
   shape (3.4) - then sequence, chain, checkpoints (3.6), outages (3.7),
   keys (3.8), with one record of lookahead to name a reorder precisely;
5. the end: free segments hold only zeros, an open outage, the anchor (3.11).

After a finding the walk resynchronises (next valid frame, next segment) so
one tampered byte gives one finding, not a cascade.
"""

from hashlib import sha256

from daozhang.host_tools.verify import reader
from daozhang.host_tools.verify.anchor import Anchor, check_anchor_signature, read_anchor
from daozhang.host_tools.verify.fast import FastPath as _FastPath
from daozhang.host_tools.verify.frames import (FRAME_HEADER, FRAME_MAGIC, FRAME_OVERHEAD, body_length, frame_head, frame_ok,
                                              next_frame, stored_and_computed_crc)
from daozhang.host_tools.verify.errors import INFORMATIONAL
from daozhang.host_tools.verify.keys import load_public_keys
from daozhang.host_tools.verify.report import Finding, VerificationReport
from daozhang.host_tools.verify.rules import CheckpointRules
from daozhang.host_tools.verify.segments import SegmentRules

_ERASED = b"\x00\x00"
_LOOKAHEAD = 16          # records searched for a missing seq before calling it a gap


class _FirstFinding(Exception):
    """Internal: stops the walk at the first finding (check_journal)."""


def verify_journal(source, pubkeys, anchor=None, progress=None, all_signatures=False):
    """Verify a journal (path or bytes); return a VerificationReport listing every finding.

    `pubkeys`: trusted Ed25519 keys (PEM paths, PEM bytes, raw 32 bytes);
    `anchor`: an anchor path, bytes or Anchor (SPEC 3.11); `progress(done, total)`
    is called once per segment.  The chain is checked everywhere; of the
    signatures, the newest of each chained run (SPEC 3.6.2), or every one with
    `all_signatures`.  Raises BadTrustInput for unreadable keys or anchor,
    OSError if the journal cannot be read; findings never raise.
    """
    return _run(source, pubkeys, anchor, progress, False, all_signatures)


def check_journal(source, pubkeys, anchor=None, progress=None, all_signatures=False):
    """Like verify_journal, but raise the first (non-informational) finding as its
    own VerificationError subclass; return the report if there is none."""
    return _run(source, pubkeys, anchor, progress, True, all_signatures)


def _run(source, pubkeys, anchor, progress, stop_at_first, all_signatures):
    if isinstance(pubkeys, (str, bytes, bytearray)) or hasattr(pubkeys, "__fspath__"):
        pubkeys = [pubkeys]
    trusted = load_public_keys(pubkeys)
    if anchor is not None and not isinstance(anchor, Anchor):
        anchor = read_anchor(anchor)
    if anchor is not None:
        check_anchor_signature(anchor, trusted)
    data, close = reader.load(source)
    try:
        walk = _Walk(data, trusted, anchor, progress, stop_at_first, all_signatures)
        try:
            walk.run()
        except _FirstFinding:
            raise walk.report.findings[-1].to_error() from None
        return walk.report
    finally:
        close()


class _Walk(CheckpointRules, SegmentRules):
    def __init__(self, data, trusted, anchor, progress, stop_at_first, all_signatures=False):
        self.data = data
        self.trusted = dict(trusted)   # grows with rotations; the caller's dict never does
        self.anchor = anchor
        self.progress = progress
        self.stop_at_first = stop_at_first
        self.report = VerificationReport()
        self.report.all_signatures = all_signatures
        self.report.trusted_kids = list(trusted)
        self.sb = None
        self.truncated = False
        # sequence and chain
        self.expect_seq = None       # E: the next sequence number, None before the first record
        self.expect_prev = None      # P: hash the next record must carry, None if unknown
        self.loose = False           # after damage: accept any seq >= E without a gap finding
        self.recent = {}             # seq -> (hash, prev) of recently accepted records
        self.last_is_checkpoint = False
        self.last_offset = None
        self.segment_records = 0
        self.type_counts = [0] * 256
        # the commit being covered by the next checkpoint
        self.leaves = []
        self.hole = False            # a record of this commit is missing or damaged
        self.flagged = False         # some covered record has the outage flag
        self.unflagged = False       # some covered record lacks it
        self.pending_rotation = None
        # checkpoints and keys
        self.all_signatures = all_signatures
        self.deferred_signature = None   # the newest signature of the run, while nothing cut the chain
        self.last_cp = None          # (seq, acked, released)
        self.in_outage = None        # None: unknown (the journal starts mid-history)
        self.current_kid = None
        self.anchor_hash = None
        self.foreign_reported = None
        self.voided = set()          # segments a boot record says recovery voided
        self.salvage_first = None    # seq of a salvage record: the next checkpoint covers from it
        self.torn_candidates = []    # damaged headers in the segment after the head
        self.free_segments = []

    # -- findings -------------------------------------------------------------

    def emit(self, kind, seq, offset, message):
        if self.deferred_signature is not None:
            # A finding may cut the chain: the signature that vouches for what
            # came before it must be checked now, not left to a later one.
            self.check_deferred_signature()
        self.report.findings.append(Finding(kind, seq, offset, message))
        if self.stop_at_first and kind not in INFORMATIONAL:
            raise _FirstFinding()

    # -- 1..3: superblock, headers, order -------------------------------------

    def run(self):
        data = self.data
        try:
            sb = reader.parse_superblock(data[0:reader.SUPERBLOCK_SIZE])
        except reader.LayoutProblem as exc:
            self.emit("BadSuperblock", None, 0, str(exc))
            return
        self.sb = sb
        report = self.report
        report.device_id, report.journal_id = sb.device_id, sb.journal_id
        report.segment_size, report.segment_count = sb.segment_size, sb.segment_count
        report.bytes_total = sb.segment_count * (sb.segment_size - reader.SEGMENT_HEADER_SIZE)
        geometry_end = reader.SUPERBLOCK_SIZE + sb.segment_count * sb.segment_size
        if len(data) < geometry_end:
            self.truncated = True
            self.emit("TruncatedJournal", None, len(data), "file is %d bytes, its geometry needs %d (%d segments of %d)"
                      % (len(data), geometry_end, sb.segment_count, sb.segment_size))
        elif len(data) > geometry_end:
            self.emit("GarbageAfterTail", None, geometry_end, "%d bytes past the end of the geometry (%d bytes)"
                      % (len(data) - geometry_end, geometry_end))
        segments = self._headers()
        report.segments_in_use = len(segments)
        segments = self._order(segments)
        fast = _FastPath(self)
        for number, header in enumerate(segments):
            end = min(header.offset + sb.segment_size, len(data))
            is_head = number == len(segments) - 1
            resume = fast.segment(header, end, is_head)
            if resume is not None:   # something is unusual: the careful path from there on
                entries = self._scan(header, end, None if resume < 0 else resume)
                self._sequence(header, entries, is_head, first=resume < 0)
            self._segment_end(header, is_head)
            reader.release(data, header.offset, end)
            if self.progress is not None:
                self.progress(number + 1, len(segments))
        self._finish(segments)

    def _headers(self):
        segments = []
        bad = []
        for index, offset, parsed in reader.segment_headers(self.data, self.sb):
            if isinstance(parsed, reader.ForeignHeader):
                self.emit("ForeignSegment", None, offset, "segment %d: %s" % (index, parsed))
            elif isinstance(parsed, reader.LayoutProblem):
                bad.append((index, offset, parsed))
            elif parsed is not None:
                segments.append(parsed)
            else:
                self.free_segments.append((index, offset))
        valid = sorted(segments, key=lambda h: h.first_seq)
        after_head = (valid[-1].index + 1) % self.sb.segment_count if valid else 0
        for index, offset, problem in bad:
            if index == after_head:
                # Maybe a header write torn by a power cut (SPEC 3.10): settled at
                # the end, once the boot records said which segments recovery voided.
                self.torn_candidates.append((index, offset, problem))
                continue
            self.emit("BadSegmentHeader", None, offset, "segment %d: %s" % (index, problem))
            salvaged = self._salvage_header(index, offset)
            if salvaged is not None:
                segments.append(salvaged)
        return segments

    def _salvage_header(self, index, offset):
        """A damaged header over intact records: walk them anyway, ordered by
        their first record, so one flipped header bit gives one finding."""
        pos = offset + reader.SEGMENT_HEADER_SIZE
        end = min(offset + self.sb.segment_size, len(self.data))
        if frame_ok(self.data, pos, end):
            n = frame_head(self.data, pos)[2]
            value, problem = reader.decode_body(0, self.data[pos + 8:pos + 8 + n])
            if problem is None:
                return _Salvaged(index, offset, value[0], value[1])
        return None

    def _order(self, segments):
        """SPEC 3.2: in-use segments, oldest first; ring order must agree."""
        by_seq = sorted(segments, key=lambda h: (h.first_seq, h.index))
        unique = []
        for header in by_seq:
            if unique and unique[-1].first_seq == header.first_seq:
                self.emit("SegmentOrder", header.first_seq, header.offset,
                          "segments %d and %d both claim first_seq %d" % (unique[-1].index, header.index,
                                                                           header.first_seq))
                continue
            unique.append(header)
        if len(unique) > 1:
            n = self.sb.segment_count
            head = unique[-1].index
            ring = sorted(unique, key=lambda h: (h.index - head - 1) % n)
            for expected, found in zip(unique, ring):
                if expected is not found:
                    self.emit("SegmentOrder", found.first_seq, found.offset,
                              "segment %d (first_seq %d) is out of ring order: after newest segment %d, "
                              "ring order should reach first_seq %d (segment %d) here"
                              % (found.index, found.first_seq, head, expected.first_seq, expected.index))
                    break
        return unique

    # -- 4a: frames of one segment ------------------------------------------

    def _scan(self, header, end, start=None):
        """Frames of one segment from `start`: [(offset, type, flags, hash, body value | None)].

        A None value is damage (a finding was emitted); its hash is None when
        its bytes cannot be trusted at all.
        """
        data = self.data
        entries = []
        append = entries.append
        pos = header.offset + reader.SEGMENT_HEADER_SIZE if start is None else start
        torn_end = self.truncated and end == len(data)
        while True:
            if pos + 2 > end:
                if pos < end and data[pos] != 0:
                    self.emit("GarbageAfterTail", None, pos, "non-zero byte in the last byte of segment %d"
                              % header.index)
                break
            magic = data[pos:pos + 2]
            if magic == _ERASED:
                self._zero_tail(header, pos, end)
                break
            n = body_length(data, pos, end) if magic == FRAME_MAGIC else None
            if n is not None:
                stop = pos + FRAME_OVERHEAD + n
                stored, computed = stored_and_computed_crc(data, pos, n)
                if stored == computed:
                    append(self._entry(pos, stop))
                    pos = stop
                    continue
                # A plausible length but a wrong CRC: damage inside the frame, if a
                # valid frame or erased space follows; else fall through to resync.
                nxt = next_frame(data, pos + 1, end)
                if nxt is not None or reader.is_zero(data[stop:end]):
                    self.emit("CrcMismatch", None, pos, "record frame CRC 0x%08x, computed 0x%08x"
                              % (stored, computed))
                    rtype, flags, _ = frame_head(data, pos)
                    append((pos, rtype, flags, None, None))
                    if nxt is None:
                        pos = stop
                        break
                    pos = nxt
                    continue
            nxt = next_frame(data, pos + 1, end)
            if nxt is None and torn_end:
                break   # the file ends inside this segment: TruncatedJournal was reported
            if nxt is None:
                self.emit("GarbageAfterTail", None, pos, "%d bytes after the last valid record of segment %d "
                          "are neither a record frame nor zero" % (end - pos, header.index))
                break
            self.emit("BadFrame", None, pos, "no valid record frame (magic, length) at this offset; "
                      "next valid frame at %d" % nxt)
            append((pos, None, 0, None, None))
            pos = nxt
        self.report.bytes_used += pos - header.offset - reader.SEGMENT_HEADER_SIZE
        return entries

    def _entry(self, pos, stop):
        """A frame whose CRC holds: (offset, type, flags, hash, body value | None)."""
        frame = self.data[pos:stop - 4]
        rtype, flags, _ = frame_head(frame, 0)
        if flags & 0xFE:
            self.emit("BadFrame", None, pos, "flags 0x%02x: bits 1-7 must be zero" % flags)
        if rtype not in reader.TYPE_NAMES:
            self.emit("UnknownRecordType", None, pos, "record type %d is not in SPEC 3.5" % rtype)
        value, problem = reader.decode_body(rtype, frame[FRAME_HEADER:])
        if problem is not None:
            self.emit(problem[0], None, pos, problem[1])
        return pos, rtype, flags, sha256(frame).digest(), value

    def _zero_tail(self, header, pos, end):
        rest = self.data[pos:end]
        if not reader.is_zero(rest):
            first = pos + len(rest) - len(rest.lstrip(b"\x00"))
            self.emit("GarbageAfterTail", None, first, "non-zero bytes after the end of the records of segment %d "
                      "(which end at %d)" % (header.index, pos))

    # -- 4b: sequence, chain, checkpoints -----------------------------------

    def _sequence(self, header, entries, is_head, first=True):
        recent = self.recent
        if len(recent) > 64:
            last = max(recent)
            self.recent = recent = {last: recent[last]}
        i = 0
        while i < len(entries):
            pos, rtype, flags, rhash, value = entries[i]
            if value is None:                      # damage, already reported
                self.loose = True
                self.hole = True
                self.expect_prev = rhash
                self.last_is_checkpoint = False
                i += 1
                continue
            seq, prev = value[0], value[1]
            if first:
                first = False
                if not isinstance(header, _Salvaged) and (seq != header.first_seq or prev != header.prev_hash):
                    self.emit("BadSegmentHeader", seq, header.offset,
                              "header says first_seq %d prev %s, its first record has seq %d prev %s"
                              % (header.first_seq, header.prev_hash.hex()[:16], seq, prev.hex()[:16]))
            if rtype == reader.TYPE_CHECKPOINT and value[5]["dev"] != self.sb.device_id:
                # name the cause before its symptom (the chain break at a splice)
                self.emit("ForeignRecord", seq, pos, "checkpoint names device %r, this journal is %r"
                          % (value[5]["dev"], self.sb.device_id))
                self.foreign_reported = pos
            expected = self.expect_seq
            if rtype == reader.TYPE_SALVAGE and expected is not None and self._salvage(pos, seq, prev, value[5]):
                pass
            elif expected is None:
                self.report.first_seq = seq
                if seq == 0 and prev != reader.ZERO_HASH:
                    self.emit("ChainBroken", seq, pos, "record 0 must carry a zero prev hash")
            elif self.loose and seq >= expected:
                if seq > expected:
                    self.hole = True
            elif seq == expected:
                if self.expect_prev is not None and prev != self.expect_prev:
                    self.emit("ChainBroken", seq, pos, "prev %s, expected the hash of record %d: %s"
                              % (prev.hex(), seq - 1, self.expect_prev.hex()))
            elif seq < expected:
                seen = recent.get(seq)
                if seen is not None and seen[0] == rhash:
                    self.emit("DuplicateRecord", seq, pos, "record %d already appeared (same hash %s)"
                              % (seq, rhash.hex()[:16]))
                    i += 1
                    continue
                if seen is not None and seen[1] == prev and seq == expected - 1:
                    self.emit("ChainBroken", seq, pos,
                              "two different records claim seq %d after the same record: the one at offset %d "
                              "is not part of the chain" % (seq, self.last_offset))
                    if self.leaves and self.leaves[-1] == seen[0]:
                        self.leaves[-1] = rhash
                    recent[seq] = (rhash, prev)
                    self.expect_prev = rhash
                    self.last_offset = pos
                    i += 1
                    continue
                self.emit("ReorderedRecord", seq, pos, "seq %d appears after seq %d" % (seq, expected - 1))
                i += 1
                continue
            else:
                j = self._find_seq(entries, i + 1, expected)
                if j is not None:
                    self.emit("ReorderedRecord", seq, pos, "seq %d appears before seq %d (at offset %d)"
                              % (seq, expected, entries[j][0]))
                    entries.insert(i, entries.pop(j))
                    continue
                self.emit("SequenceGap", seq, pos, "expected seq %d, found %d: %d record(s) missing"
                          % (expected, seq, seq - expected))
                self.hole = True
            self._accept(pos, rtype, flags, rhash, value)
            i += 1

    def _segment_end(self, header, is_head):
        """SPEC 3.6: every in-use segment ends with a checkpoint, but for a torn tail."""
        if self.segment_records and not self.last_is_checkpoint:
            last = self.report.last_seq
            if is_head:
                self.emit("UncommittedTail", last, self.last_offset,
                          "records after the last checkpoint (up to seq %d) were never committed" % last)
            else:
                self.emit("BadCheckpoint", last, self.last_offset,
                          "segment %d ends with seq %d, which is not a checkpoint" % (header.index, last))
        self.segment_records = 0

    @staticmethod
    def _find_seq(entries, start, seq):
        for j in range(start, min(len(entries), start + _LOOKAHEAD)):
            value = entries[j][4]
            if value is not None and value[0] == seq:
                return j
        return None

    def _accept(self, pos, rtype, flags, rhash, value):
        seq = value[0]
        report = self.report
        self.expect_seq = seq + 1
        self.expect_prev = rhash
        self.loose = False
        self.recent[seq] = (rhash, value[1])
        self.last_offset = pos
        report.records += 1
        report.last_seq = seq
        self.segment_records += 1
        self.type_counts[rtype] += 1
        if self.anchor is not None and seq == self.anchor.seq:
            self.anchor_hash = rhash
        if flags & reader.FLAG_OUTAGE:
            self.flagged = True
        else:
            self.unflagged = True
        if rtype == reader.TYPE_CHECKPOINT:
            self._checkpoint(pos, seq, value, flags, rhash)
            self.last_is_checkpoint = True
        else:
            self.last_is_checkpoint = False
            self.leaves.append(rhash)
            if rtype == reader.TYPE_KEY_ROTATION:
                self._rotation(pos, seq, value[5])
            elif rtype == reader.TYPE_BOOT:
                self.note_boot(value[5])

    # -- 5: the end -----------------------------------------------------------

    def _finish(self, segments):
        report = self.report
        self.check_deferred_signature()
        self._torn_headers()
        self._free_segments_zero(segments)
        for rtype, count in enumerate(self.type_counts):
            if count:
                name = reader.TYPE_NAMES.get(rtype, "type_%d" % rtype)
                report.counts[name] = count
        if self.in_outage:
            self.emit("UnrecoveredOutage", report.last_checkpoint["seq"], report.last_checkpoint["offset"],
                      "the journal ends in a signer outage: records after the last signed checkpoint are "
                      "chained but vouched for by no signature")
        anchor = self.anchor
        if anchor is None:
            return
        report.anchor_seq = anchor.seq
        sb = self.sb
        if anchor.journal_id != sb.journal_id or anchor.dev != sb.device_id:
            self.emit("AnchorMismatch", anchor.seq, None, "anchor is for journal %s of %r, this is journal %s of %r"
                      % (anchor.journal_id.hex(), anchor.dev, sb.journal_id.hex(), sb.device_id))
        elif self.anchor_hash is not None:
            if self.anchor_hash != anchor.hash:
                self.emit("AnchorMismatch", anchor.seq, None, "record %d has hash %s, the anchor's checkpoint %s"
                          % (anchor.seq, self.anchor_hash.hex(), anchor.hash.hex()))
        elif report.last_seq is None or report.last_seq < anchor.seq:
            last = -1 if report.last_seq is None else report.last_seq
            torn = self.truncated or not self.last_is_checkpoint
            if torn:
                if not self.truncated:   # a short file was reported already
                    self.emit("TruncatedJournal", last, None, "journal ends at seq %d without a checkpoint, "
                              "before the anchor's seq %d" % (last, anchor.seq))
            else:
                self.emit("Rollback", last, None, "journal ends at seq %d, the anchor proves seq %d was committed: "
                          "this is an older image" % (last, anchor.seq))
        elif report.first_seq is not None and anchor.seq >= report.first_seq:
            self.emit("AnchorMismatch", anchor.seq, None, "record %d (the anchor's checkpoint) is not intact "
                      "in the journal" % anchor.seq)


class _Salvaged:
    """A segment whose header is damaged, placed by its first record."""

    __slots__ = ("index", "offset", "first_seq", "prev_hash")

    def __init__(self, index, offset, first_seq, prev_hash):
        self.index, self.offset, self.first_seq, self.prev_hash = index, offset, first_seq, prev_hash
