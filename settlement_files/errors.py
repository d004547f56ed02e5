"""The settlement-file reader's errors, by whose fault (SPEC 1.3).

`SettlementFileError`: the acquirer's file as a whole cannot be read (exit 2).
`MappingError`: the operator's map file is wrong (exit 2).
`RowProblem`: internal, why one field of one row is bad; it becomes a bad-row
reason (`{"line": n, "reason": text}`) and the other rows still count.
"""

from daozhang.agent.core import card_data
from daozhang.agent.core.errors import RemoteError
from daozhang.toml_tables import ConfigFileError


class SettlementFileError(RemoteError):
    """The settlement file cannot be read at all (exit code 2): unreadable,
    wrong encoding, no header or a required column missing.

    Its message quotes the file's bytes (a header, a line), and a quote can
    make a card number where the file had none (repr's `\\x04` before
    digits): every card number in the message is masked, whatever made it."""

    def __init__(self, message):
        super().__init__(card_data.masked_value(message))


# The operator's mapping file is wrong: names the file, key and fault.  The
# one error class of every config file (daozhang/toml_tables.py).
MappingError = ConfigFileError


class RowProblem(Exception):
    """Internal: why one field of one row is bad (becomes a bad-row reason)."""

    def __init__(self, column, message):
        super().__init__("%s: %s" % (column, message))
        self.column = column


def shown(value):
    """At most 40 characters of an outside value for a message."""
    return repr(value if len(value) <= 40 else value[:40] + "...")
