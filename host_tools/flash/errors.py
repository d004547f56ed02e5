"""The flash tool's errors, split by whose fault (agent/core/errors.py's tree).

Every message names the target and the fix, in one line, because the CLI
prints it as `daozhang: <message>`.
"""

from daozhang.agent.core.errors import LocalError, RemoteError, StorageError


class TargetRefused(LocalError):
    """The target is unsafe to overwrite (mounted, the running system, too big)."""


class ImageError(RemoteError):
    """The image, its block map or its partitions are not what they claim."""


class WriteError(StorageError):
    """The target failed under us: short write, EIO, a failed fsync."""


class VerifyFailed(StorageError):
    """What was read back from the target differs from what was written.

    A finding, not a usage error: exit code 1.  `where` is the byte offset
    of the first range that differs."""

    exit_code = 1

    def __init__(self, message, where=None):
        super().__init__(message)
        self.where = where


class BoardError(LocalError):
    """A MicroPython board did not answer as one (no REPL, wrong port)."""
