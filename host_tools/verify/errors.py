"""The verifier's findings as exceptions: one class per finding kind (SPEC 3.12).

`verify_journal` returns every finding in a report; `check_journal` raises the
first one as its own class, python-tuf style, so a caller can catch exactly
`Rollback` or `BadSignature`.  The record decoder used by show/export raises
these classes too, and nothing else.

Every class is a `VerificationError`, which is a `FindingError` (exit code 1):
a finding is about the journal's bytes, never about the technician's usage.
A bad anchor or key file is the technician's input, so it is a `LocalError`
(exit code 2), see `BadTrustInput`.
"""

from daozhang.agent.core.errors import FindingError, LocalError


class VerificationError(FindingError):
    """A finding raised as an exception; `.finding` holds kind, seq, offset."""

    kind = "VerificationError"

    def __init__(self, message, finding=None):
        super().__init__(message)
        self.finding = finding


class BadTrustInput(LocalError):
    """An anchor or public key given to the verifier is unreadable or invalid."""


# SPEC 3.12, one class per finding kind, in the order the spec lists them.
# The docstring is the one-line meaning the README and `verify --help` repeat.


class BadSuperblock(VerificationError):
    """The superblock's magic, version, CRC, geometry or padding is wrong."""
    kind = "BadSuperblock"


class BadSegmentHeader(VerificationError):
    """A segment header is neither valid nor all zero, or names the wrong first record."""
    kind = "BadSegmentHeader"


class BadFrame(VerificationError):
    """Bytes where a record frame should start have a wrong magic, length or flags."""
    kind = "BadFrame"


class CrcMismatch(VerificationError):
    """A record frame's CRC-32 does not match its bytes."""
    kind = "CrcMismatch"


class NonCanonicalCbor(VerificationError):
    """A record body is not deterministic CBOR (SPEC 2)."""
    kind = "NonCanonicalCbor"


class BadRecordBody(VerificationError):
    """A record body or payload has the wrong shape or field types."""
    kind = "BadRecordBody"


class UnknownRecordType(VerificationError):
    """A record's type is not one this version knows."""
    kind = "UnknownRecordType"


class SequenceGap(VerificationError):
    """One or more sequence numbers are missing."""
    kind = "SequenceGap"


class DuplicateRecord(VerificationError):
    """A record appears twice."""
    kind = "DuplicateRecord"


class ReorderedRecord(VerificationError):
    """Records appear out of sequence order."""
    kind = "ReorderedRecord"


class ChainBroken(VerificationError):
    """A record's prev hash is not the hash of the record before it."""
    kind = "ChainBroken"


class ForeignSegment(VerificationError):
    """A segment header carries another journal's id."""
    kind = "ForeignSegment"


class ForeignRecord(VerificationError):
    """A checkpoint names another device."""
    kind = "ForeignRecord"


class BadCheckpoint(VerificationError):
    """A checkpoint's first, root or cursors are inconsistent."""
    kind = "BadCheckpoint"


class BadSignature(VerificationError):
    """A checkpoint's signature does not verify."""
    kind = "BadSignature"


class UnknownKey(VerificationError):
    """A checkpoint is signed by a key the verifier does not trust."""
    kind = "UnknownKey"


class WrongKey(VerificationError):
    """A checkpoint is signed by a trusted key other than the journal's current one."""
    kind = "WrongKey"


class UnsignedOutsideOutage(VerificationError):
    """Unsigned records or checkpoints outside a declared signer outage."""
    kind = "UnsignedOutsideOutage"


class OutageFlagMisuse(VerificationError):
    """A record flagged as written in an outage is not covered by an outage checkpoint."""
    kind = "OutageFlagMisuse"


class OutageNotRecovered(VerificationError):
    """A signer outage is followed by a normal checkpoint without a recovery one."""
    kind = "OutageNotRecovered"


class RecoveryWithoutOutage(VerificationError):
    """A recovery checkpoint follows no signer outage."""
    kind = "RecoveryWithoutOutage"


class UnrecoveredOutage(VerificationError):
    """The journal ends inside a signer outage: its last records are vouched for by no signature."""
    kind = "UnrecoveredOutage"


class GarbageAfterTail(VerificationError):
    """Non-zero bytes after the last record of a segment, in a free segment, or past the geometry."""
    kind = "GarbageAfterTail"


class UncommittedTail(VerificationError):
    """Records after the last checkpoint: a crash before commit (informational)."""
    kind = "UncommittedTail"


class SegmentOrder(VerificationError):
    """Segment positions in the ring disagree with their sequence order."""
    kind = "SegmentOrder"


class TruncatedJournal(VerificationError):
    """The journal is shorter than its geometry or ends before the anchor, torn."""
    kind = "TruncatedJournal"


class Rollback(VerificationError):
    """The journal is an older valid image than the anchor."""
    kind = "Rollback"


class AnchorMismatch(VerificationError):
    """The journal's record at the anchor's sequence is not the anchored one."""
    kind = "AnchorMismatch"


class RecoveryCut(VerificationError):
    """A boot record declares that recovery cut a torn tail (SPEC 3.9): records
    that may have been reported committed are no longer in the journal; the
    bytes are in the quarantine file beside it."""
    kind = "RecoveryCut"


class Salvaged(VerificationError):
    """A salvage record (SPEC 3.14) names a sequence range set aside as damaged:
    the journal no longer holds those records."""
    kind = "Salvaged"


FINDING_CLASSES = dict((cls.kind, cls) for cls in (
    RecoveryCut,
    Salvaged,
    BadSuperblock,
    BadSegmentHeader,
    BadFrame,
    CrcMismatch,
    NonCanonicalCbor,
    BadRecordBody,
    UnknownRecordType,
    SequenceGap,
    DuplicateRecord,
    ReorderedRecord,
    ChainBroken,
    ForeignSegment,
    ForeignRecord,
    BadCheckpoint,
    BadSignature,
    UnknownKey,
    WrongKey,
    UnsignedOutsideOutage,
    OutageFlagMisuse,
    OutageNotRecovered,
    RecoveryWithoutOutage,
    UnrecoveredOutage,
    GarbageAfterTail,
    UncommittedTail,
    SegmentOrder,
    TruncatedJournal,
    Rollback,
    AnchorMismatch,
))
FINDING_KINDS = tuple(FINDING_CLASSES)
FINDING_MEANINGS = dict((kind, cls.__doc__) for kind, cls in FINDING_CLASSES.items())

# Findings that do not make a journal fail verification (SPEC 3.12).
INFORMATIONAL = frozenset(("UncommittedTail",))


def error_for(finding):
    """The exception of a finding's kind, carrying the finding."""
    return FINDING_CLASSES[finding.kind](finding.describe(), finding)
