"""What a verification found: `Finding` and `VerificationReport` (SPEC 3.12).

A report is plain data: the technician's CLI prints it or dumps it as JSON,
tests look at `.kinds()`.  `ok` ignores informational findings
(`UncommittedTail`), which describe a crash, not tampering.
"""

from daozhang.host_tools.verify.errors import INFORMATIONAL, error_for


class Finding:
    """One problem: its kind (SPEC 3.12), record sequence or None, file offset."""

    __slots__ = ("kind", "seq", "offset", "message")

    def __init__(self, kind, seq, offset, message):
        self.kind = kind
        self.seq = seq
        self.offset = offset
        self.message = message

    @property
    def informational(self):
        return self.kind in INFORMATIONAL

    def describe(self):
        where = "offset %d" % self.offset if self.offset is not None else "offset ?"
        if self.seq is not None:
            where = "seq %d, %s" % (self.seq, where)
        return "%s at %s: %s" % (self.kind, where, self.message)

    def as_dict(self):
        return {"kind": self.kind, "seq": self.seq, "offset": self.offset, "message": self.message,
                "informational": self.informational}

    def to_error(self):
        return error_for(self)

    def __repr__(self):
        return "Finding(%s)" % self.describe()


class VerificationReport:
    """The result of `verify_journal`: findings plus what the journal holds."""

    def __init__(self):
        self.findings = []
        self.device_id = None
        self.journal_id = None
        self.segment_size = None
        self.segment_count = None
        self.segments_in_use = 0
        self.first_seq = None
        self.last_seq = None
        self.records = 0
        self.counts = {}              # record type name -> count
        self.checkpoints = 0
        self.last_checkpoint = None   # dict: seq, hash, alg, kid, state, acked, released, wall_ms
        self.last_signed_checkpoint = None
        self.signatures_checked = 0
        self.signatures_vouched = 0     # signed checkpoints a later checked signature vouches for (SPEC 3.6.2)
        self.all_signatures = False
        self.trusted_kids = []
        self.anchor_seq = None
        self.bytes_used = 0
        self.bytes_total = 0

    @property
    def ok(self):
        return not any(f.kind not in INFORMATIONAL for f in self.findings)

    @property
    def fill_level(self):
        """Fraction of the segments' record space holding records."""
        return self.bytes_used / self.bytes_total if self.bytes_total else 0.0

    def kinds(self):
        return [f.kind for f in self.findings]

    def first_error(self):
        """The first non-informational finding as its exception, or None."""
        for finding in self.findings:
            if finding.kind not in INFORMATIONAL:
                return finding.to_error()
        return None

    def as_dict(self):
        def ck(c):
            if c is None:
                return None
            return dict((k, v.hex() if isinstance(v, bytes) else v) for k, v in c.items())
        return {
            "ok": self.ok,
            "device_id": self.device_id,
            "journal_id": self.journal_id.hex() if self.journal_id else None,
            "segment_size": self.segment_size,
            "segment_count": self.segment_count,
            "segments_in_use": self.segments_in_use,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "records": self.records,
            "counts": dict(self.counts),
            "checkpoints": self.checkpoints,
            "signatures_checked": self.signatures_checked,
            "signatures_vouched": self.signatures_vouched,
            "all_signatures": self.all_signatures,
            "last_checkpoint": ck(self.last_checkpoint),
            "last_signed_checkpoint": ck(self.last_signed_checkpoint),
            "trusted_kids": [k.hex() for k in self.trusted_kids],
            "anchor_seq": self.anchor_seq,
            "fill_level": round(self.fill_level, 6),
            "findings": [f.as_dict() for f in self.findings],
        }
