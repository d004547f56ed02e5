"""Verifier rules about whole segments and declared gaps (SPEC 3.9, 3.10, 3.13.7, 3.14).

A mixin of the walk in verify.py (like verify_rules.CheckpointRules): free
segments hold only zeros or declared crash residue, a garbled header after the
head is residue only where a boot record declared it, and a salvage record's
sequence jump is reported on every run.  Needs from the walk: emit(), data,
sb, free_segments, voided, torn_candidates, expect_seq, expect_prev, leaves,
hole, salvage_first.
"""

from daozhang.host_tools.verify import reader


class SegmentRules:
    def _salvage(self, pos, seq, prev, payload):
        """SPEC 3.14: a salvage record jumps the sequence over the range it
        names; reported on every run, never intact.  True if it fits here."""
        if payload["lost_first"] != self.expect_seq or payload["lost_last"] != seq - 1 or seq <= self.expect_seq \
                or (self.expect_prev is not None and prev != self.expect_prev):
            return False
        self.emit("Salvaged", seq, pos, "records %d..%d were set aside as damaged by `journal salvage` "
                  "(%d bytes from offset %d, sha256 %s): this journal no longer holds them"
                  % (payload["lost_first"], payload["lost_last"], payload["length"], payload["offset"],
                     payload["sha256"].hex()))
        self.salvage_first = seq
        self.leaves = []
        self.hole = False
        return True

    def _free_segments_zero(self, segments):
        """SPEC 3.1: bytes never written are zero, and a segment is written whole
        (3.10), so a free segment holds only zeros, unless recovery voided it
        (a boot record lists it) or it is the one after the head, where a new
        segment's write torn by a power cut (header lost, body kept) lands:
        crash residue, reported like an uncommitted tail."""
        data = self.data
        after_head = (segments[-1].index + 1) % self.sb.segment_count if segments else None
        for index, offset in self.free_segments:
            if index in self.voided:
                continue
            end = min(offset + self.sb.segment_size, len(data))
            if not reader.zero_span(data, offset, end):
                body = data[offset:end]
                first = offset + len(body) - len(body.lstrip(b"\x00"))
                if index == after_head:
                    self.emit("UncommittedTail", None, first, "free segment %d, next after the head, holds "
                              "non-zero bytes: a new segment's write torn before its header landed" % index)
                else:
                    self.emit("GarbageAfterTail", None, first, "free segment %d (all-zero header) holds non-zero "
                              "bytes, and no boot record says recovery voided it" % index)

    def _torn_headers(self):
        """A garbled header after the head is crash residue only where a later
        boot record says recovery found it (voided_segments); else damage."""
        for index, offset, problem in self.torn_candidates:
            if index in self.voided:
                self.emit("UncommittedTail", None, offset, "segment %d, next after the head: %s - a header write "
                          "torn by a power cut, declared by recovery (SPEC 3.10)" % (index, problem))
            else:
                self.emit("BadSegmentHeader", None, offset, "segment %d: %s" % (index, problem))
