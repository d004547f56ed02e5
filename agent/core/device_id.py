"""The device id rule (SPEC 3.1, 6.10.1), one for every part of daozhang.

A device id is written into the journal's superblock, signed into every
checkpoint and receipt, used as the terminal's certificate CN and as one
MQTT topic level (`daozhang/v1/<id>/...`): 1 to 64 characters of
A-Z a-z 0-9 . _ -, starting with a letter or a digit (so it is never a
hidden file name, never read as a command-line option, and never holds a
topic separator or wildcard), and never card data (SPEC 4.4: an id is
printed and logged everywhere).  The CA applies the same rule to backend
names and broker host names (host_tools/pki.py).
"""

from daozhang.agent.core import card_data
from daozhang.agent.core.errors import LocalError

MAX_LENGTH = 64
_FIRST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_CHARS = _FIRST + "._-"
RULE = "1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit"


def problem(device_id):
    """Why `device_id` breaks the rule (text that never echoes card data),
    or None if it keeps it."""
    if not isinstance(device_id, str) or not 1 <= len(device_id) <= MAX_LENGTH:
        return "expected %s" % RULE
    if card_data.card_data_code(device_id, True) is not None:
        return "holds card data (a card number); choose another id"
    if device_id[0] not in _FIRST:
        return "%r: expected %s" % (device_id, RULE)
    for ch in device_id:
        if ch not in _CHARS:
            return "%r: expected %s" % (device_id, RULE)
    return None


def is_valid(device_id):
    return problem(device_id) is None


def check(device_id, what="device id"):
    """`device_id` if it keeps the rule, else LocalError naming `what`."""
    why = problem(device_id)
    if why is not None:
        raise LocalError("%s %s" % (what, why))
    return device_id
