"""The fleet PKI's errors: the operator's (PkiError, exit 2) and a certificate's (a finding, exit 1)."""

from daozhang.agent.core.errors import FindingError, LocalError


class PkiError(LocalError):
    """The operator asked for something the PKI refuses (exit 2)."""


class IdentityConflict(PkiError):
    """A name is already issued as another kind of identity."""


class CertificateRejected(FindingError):
    """A certificate does not chain to the fleet CA or is out of its validity."""
