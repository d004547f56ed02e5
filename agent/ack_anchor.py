"""The ack anchor file (SPEC 6.6): the latest valid backend receipts ack,
kept next to the journal as <journal>.ack, written temp + fsync + rename +
directory fsync.  After a restart it brings back cursors that had not yet
ridden on a commit (SyncAgent.adopt_anchor checks it like a fresh ack).
"""

from daozhang.files import atomic_write


def anchor_path(journal_path):
    return journal_path + ".ack"


def save_anchor(journal_path, payload):
    """Atomically replace <journal>.ack with the ack's payload bytes."""
    atomic_write(anchor_path(journal_path), bytes(payload), durable=True)


def load_anchor(journal_path):
    """The saved ack payload bytes, or None."""
    try:
        with open(anchor_path(journal_path), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
