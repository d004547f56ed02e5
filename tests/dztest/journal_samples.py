"""Journals made by the real writer (agent/journal_file.py), for the verifier's tests.

The verifier never imports the writer; its tests do, so that what is verified
is what the product writes.  `forge` (journal_forge.py) then plays the
attacker on these images.
"""

import os

from daozhang.agent.core.journal.ring import Clock, SignerUnavailable
from daozhang.agent.journal_file import JournalFile, create_journal
from daozhang.signing import Ed25519Signer

from dztest.journal_forge import TRANSACTION, sample_txn


class StepClock:
    """Deterministic wall/monotonic time for reproducible images."""

    def __init__(self, wall_ms=1764145800000, boot_id=b"\x01" * 8):
        self.wall_ms, self.mono_ms, self.boot_id = wall_ms, 1000, boot_id

    def now(self):
        self.wall_ms += 5
        self.mono_ms += 5
        return Clock(self.wall_ms, self.boot_id, self.mono_ms)


class SwitchableSigner:
    """An Ed25519 signer whose key can be made unavailable (a signer outage, SPEC 3.7)."""

    def __init__(self, private_key):
        self.inner = Ed25519Signer(private_key)
        self.alg, self.kid = self.inner.alg, self.inner.kid
        self.available = True

    def sign(self, message):
        if not self.available:
            raise SignerUnavailable("test outage")
        return self.inner.sign(message)


def write_journal(path, key, device_id="pos-7", segment_size=8192, segment_count=12, records=300,
                  per_commit=5, release=True, signer=None, clock=None):
    """Create a journal at `path` and append about `records` transactions with the writer.

    With `release`, every commit also acks and releases everything, so the ring
    can wrap; returns the open JournalFile's stats after closing."""
    create_journal(path, device_id, size=4096 + segment_size * segment_count, segment_size=segment_size,
                   created_ms=1764100000000)
    signer = signer or SwitchableSigner(key)
    with JournalFile.open(path, signer, clock=clock or StepClock()) as journal:
        append_sales(journal, records, per_commit, release)
        return journal.stats()


def append_sales(journal, records, per_commit=5, release=True, start=0):
    """Append sales in commits of `per_commit`.  release=True acks and releases
    them in a cursor-only commit after each; release="inline" in the same commit."""
    i = start
    while i < start + records:
        entries = [(TRANSACTION, sample_txn(i + k)) for k in range(per_commit)]
        i += per_commit
        if release == "inline":
            nxt = journal.ring.next_seq + len(entries)     # the checkpoint's own seq
            journal.append_many(entries, acked=nxt, released=nxt)
            continue
        results = journal.append_many(entries)
        if release:
            nxt = results[-1].seq + 2      # the records and their checkpoint
            journal.set_cursors(acked=nxt, released=nxt)
    return i


def read(path):
    with open(path, "rb") as f:
        return f.read()


def file_state(*paths):
    """Bytes and mtime of files, to show verification left trusted state alone."""
    out = {}
    for p in paths:
        st = os.stat(p)
        out[p] = (read(p), st.st_mtime_ns, st.st_size)
    return out


def write(directory, name, data):
    """Write `data` to directory/name; return the path."""
    path = os.path.join(str(directory), name)
    with open(path, "wb") as f:
        f.write(data)
    return path
