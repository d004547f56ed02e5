"""The error tree shared by every portable core module.

Errors say whose fault they are (SPEC 1.3): `RemoteError` for bytes that came
from outside (a peer, a file, a POS), `LocalError` for misuse by our own code
or the operator, `StorageError` for the device under us.  Every error carries
an `exit_code` so the CLI can turn it into one line and a documented code:
0 ok, 1 a finding (tampering, a failed check), 2 a usage or I/O error.

Portable: runs unchanged on CPython and MicroPython (no dataclasses, typing).
"""


class DaozhangError(Exception):
    exit_code = 2

    def __init__(self, message):
        super().__init__(message)
        self.message = message

    def __str__(self):
        return self.message


class LocalError(DaozhangError):
    """Our side got it wrong: bad arguments, a call in the wrong state."""


class RemoteError(DaozhangError):
    """Bytes or data from outside are wrong: malformed, forged, replayed."""


class StorageError(DaozhangError):
    """The storage under us failed (EIO, ENOSPC, a failed fsync)."""


class DecodeError(RemoteError):
    """Bytes that do not decode under the spec (CBOR, framing)."""


class ValidationError(RemoteError):
    """A well-formed value that breaks a rule; `field` names what is wrong."""

    def __init__(self, field, message, code="invalid"):
        super().__init__(field + ": " + message if field else message)
        self.field = field
        self.code = code


class PaymentDataRefused(ValidationError):
    """A full PAN, CVV or track data: refused before it reaches any disk."""

    def __init__(self, field, message, code="pan_refused"):
        super().__init__(field, message, code)


class JournalError(DaozhangError):
    """Base of the journal's own errors."""


class JournalFull(JournalError):
    """No segment can be reclaimed: the append is refused, nothing dropped."""


class JournalCorrupt(JournalError):
    """The journal cannot be opened: its structure is damaged beyond recovery."""
    exit_code = 1


class JournalDamaged(JournalError):
    """Committed records are damaged (bit rot, a bad block, tampering): the
    writer refuses to open rather than cut or overwrite them.  Names where:
    `segment`, file `offset`, and the sequence range `first_seq`..`last_seq`
    affected (`last_seq` None when unknown).  Exit 2: the operator must act
    (`daozhang journal salvage`), nothing was changed."""

    def __init__(self, message, segment=None, offset=None, first_seq=None, last_seq=None):
        super().__init__(message)
        self.segment = segment
        self.offset = offset
        self.first_seq = first_seq
        self.last_seq = last_seq


class FindingError(DaozhangError):
    """A check found something wrong (tampering, a bad signature)."""
    exit_code = 1
