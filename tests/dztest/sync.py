"""Helpers for the sync tests: a journal, a backend, and an in-memory link.

`Pair` drives the sans-IO SyncCore against a real Ingestor (SQLite or
PostgreSQL store) with no broker: publishes go straight to the backend,
acks straight back, so the whole protocol runs in one thread in
milliseconds.  The real-broker tests use the same pieces as processes.
"""

import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from daozhang.agent.core.sync.sync_core import SyncCore
from daozhang.agent.journal_file import create_journal
from daozhang.signing import ed25519_verify
from daozhang.signing import Ed25519Signer
from daozhang.agent.journal_file import JournalFile
from daozhang.agent.frame_reader import FrameReader
from daozhang.backend.ack import AckSigner
from daozhang.backend.service import Ingestor
from dztest.dates import SALE_TIME

DEVICE = "pos-sync-1"


def signer(seed):
    return Ed25519Signer(Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


def txn_payload(i, amount=1250):
    # Dated relative to now (dztest.dates): a fixed day would go overdue.
    return {"kind": "sale", "pos_txn_id": "T-%06d" % i, "time": SALE_TIME,
            "amount": amount, "currency": "CNY", "card": "622588******1234", "card_type": "debit",
            "auth_code": "A1B2C3", "rrn": "%012d" % i, "merchant_id": "102290058120001",
            "terminal_id": "SH000001", "mcc": "5812", "settlement": "T1"}


def make_journal(tmp, device=DEVICE, size=4 << 20, segment_size=64 << 10, seed=7):
    path = os.path.join(str(tmp), "journal.dz")
    create_journal(path, device, size=size, segment_size=segment_size)
    return path, JournalFile.open(path, signer(seed))


class Clock:
    def __init__(self, t=1_800_000_000_000):
        self.t = t

    def __call__(self):
        return self.t


class Pair:
    """A SyncCore and a backend Ingestor joined by a list of messages."""

    def __init__(self, journal, store, device=DEVICE, backend_seed=9, device_seed=7, settings=None,
                 all_signatures=False):
        self.journal = journal
        self.store = store
        self.clock = Clock()
        self.backend = AckSigner(signer(backend_seed))
        self.ingestor = Ingestor(store, self.backend, clock=self.clock, all_signatures=all_signatures)
        store.add_device(device, signer(device_seed).public_bytes)
        self.reader = FrameReader(journal)
        self.core = SyncCore(device, self.backend.public_bytes, self.backend.kid, ed25519_verify,
                             self.reader.hash_at, journal.ring.acked, journal.ring.next_seq, settings)
        self.device = device
        self.up = []          # (topic, payload, token)
        self.down = []        # ack payloads to deliver
        self.events = []      # every non-publish action
        self.acks = []

    def perform(self, actions):
        for a in actions:
            if a[0] == "connect":
                self.perform(self.core.connected(self.clock()))
            elif a[0] == "read":
                recs, end, last = self.reader.read(a[1], a[2])
                self.perform(self.core.frames(recs, end, last, self.clock()))
            elif a[0] == "publish":
                self.up.append((a[1], a[2], a[3]))
            else:
                self.events.append(a)
                if a[0] == "ack":
                    self.acks.append(a[1])
                    self.journal.note_cursors(a[1], a[1])

    def step(self):
        """Poll, deliver everything up, deliver acks down; True if anything moved."""
        self.core.journal_progress(self.journal.ring.next_seq)
        self.perform(self.core.poll(self.clock()))
        moved = bool(self.up or self.down)
        up, self.up = self.up, []
        for topic, payload, token in up:
            self.perform(self.core.puback(token, self.clock()))
            if topic == "receipts":
                ack = self.ingestor.receipts(self.device, payload)
                if ack is not None:
                    self.down.append(ack)
        down, self.down = self.down, []
        for payload in down:
            self.perform(self.core.message("acks", payload, self.clock()))
        return moved

    def drain(self, limit=100000):
        for _ in range(limit):
            if not self.step() and self.core.next_send >= self.core.next_seq:
                return
        raise AssertionError("did not drain")
