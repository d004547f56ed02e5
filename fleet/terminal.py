"""One simulated terminal: a real signed journal in memory and the real sync core.

No sockets here.  The journal is the agent's own JournalFile over the core's
MemoryStorage (agent/core/journal/ring_storage.py): every sale is a real commit with a
record, the hash chain and an Ed25519-signed checkpoint; the sync state is
the agent's SyncCore (docs/SPEC.md §6), fed frames by the agent's own
FrameReader.  The adapter (fleet/mqtt_pool.py) performs what `step()` and
the event methods return:

    ("connect",)                           open the MQTT connection
    ("publish", leaf, payload, token, retain)   publish on daozhang/v1/<dev>/<leaf>

and reports back connected(), lost(), puback(), down_message().

Acked records are released at once (the cursors ride on the next commit,
as in the agent), so a terminal's ring holds only its backlog; a ring that
fills up because the backend stopped acking refuses the sale
(`sales_refused`), as a real terminal does, and drops nothing.
"""

import collections
import datetime
import os

from daozhang.agent.core.errors import JournalFull
from daozhang.agent.core.journal import layout
from daozhang.agent.core.journal import record
from daozhang.agent.core.journal import ring_storage
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.agent.core.sync.sync_core import SyncCore
from daozhang.agent.journal_file import JournalFile
from daozhang.agent.frame_reader import FrameReader
from daozhang.agent.core.journal import checkpoint
from daozhang.signing import ed25519_verify

SEGMENT_SIZE = 16 * 1024
RECORD_ROOM = 700          # bytes of ring per sale (record ~460 + its checkpoint's share)
MIN_SEGMENTS = 6
STATUS_INTERVAL_MS = 10000  # counters in the retained status at most this often
BACKLOG_COMMIT = 25         # records per backlog commit: well inside one 16 KiB segment
SYNC_SETTINGS = {"ack_timeout_ms": 30000, "backoff_cap_ms": 20000}   # SimSettings.sync overrides


def journal_size(backlog, sales):
    """Bytes of a ring that holds `backlog` unacked records plus `sales` more,
    with spare segments for checkpoints and the commit in progress."""
    need = (backlog + sales) * RECORD_ROOM
    segments = max(MIN_SEGMENTS, -(-need // SEGMENT_SIZE) + 3)
    return layout.SUPERBLOCK_SIZE + segments * SEGMENT_SIZE


def memory_journal(device_id, signer, size):
    """A fresh journal (SPEC 3.1) in a bytearray, opened with a boot record."""
    seg_size, count = layout.geometry_for(size, SEGMENT_SIZE)
    geo = layout.Geometry(seg_size, count, os.urandom(layout.JOURNAL_ID_SIZE), device_id, 0)
    image = bytearray(geo.file_size)
    head = geo.encode()
    image[:len(head)] = head
    storage = ring_storage.MemoryStorage(b"")
    storage.data = image            # no copy of a journal-sized buffer
    storage.close = lambda: None    # JournalFile.close() closes its storage
    return JournalFile.open(None, signer, storage=storage)


ACQUIRERS = ("unionpay", "lakala", "yeahka", "sumpay")


def sale_payload(device_id, n, amount, merchant, time_text):
    """A card sale as the POS reports it (PCI DSS 3.4: the card masked)."""
    return {"kind": "sale", "pos_txn_id": "%s-%08d" % (device_id[-6:], n), "time": time_text,
            "amount": amount, "currency": "CNY", "card": "622588******%04d" % (n % 10000),
            "card_type": "debit", "auth_code": "A%05d" % (n % 100000), "rrn": "%012d" % n,
            "merchant_id": merchant, "terminal_id": device_id[-8:], "mcc": "5812",
            "settlement": "T1", "acquirer": ACQUIRERS[int(merchant[-2:]) % len(ACQUIRERS)]}


def _iso(now_ms):
    return datetime.datetime.fromtimestamp(now_ms / 1000, datetime.timezone.utc).isoformat(
        timespec="seconds")


class SimTerminal:
    def __init__(self, identity, backend_pub, backlog=0, sales_room=200, merchant="102290058120001",
                 sync_settings=None, hold=False, status_interval_ms=STATUS_INTERVAL_MS):
        self.device_id = identity.device_id
        self.identity = identity
        self.merchant = merchant
        self.created_ms = int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000)
        self.journal = memory_journal(self.device_id, identity.signer(),
                                      journal_size(backlog, sales_room))
        self.reader = FrameReader(self.journal)
        self.sales = 0
        self.sales_refused = 0
        self.records_acked = 0
        self.rejects = 0
        self.lags_ms = []             # sale commit -> backend ack covering it
        self._status_at = 0
        self.status_interval_ms = status_interval_ms
        self._status_key = None
        self._pending = collections.deque()   # (seq, committed_at_ms) not yet acked
        if backlog:
            self._backlog(backlog)
        self.first_seq_to_send = self.journal.noted_cursors()[0]
        # hold: the core is told of the backlog only at release(), so a storm
        # can connect every terminal first and then measure the drain alone.
        self.core = SyncCore(self.device_id, backend_pub, checkpoint.key_id(backend_pub),
                             ed25519_verify, self.reader.hash_at, self.first_seq_to_send,
                             self.first_seq_to_send if hold else self.journal.ring.next_seq,
                             dict(SYNC_SETTINGS, **(sync_settings or {})))

    def release(self):
        """Let the sync core see the whole journal (the held backlog)."""
        self.core.journal_progress(self.journal.ring.next_seq)

    def _backlog(self, count):
        """`count` sales committed before the terminal connects (an outage);
        their lag is counted from when the terminal comes online."""
        done = 0
        while done < count:
            n = min(BACKLOG_COMMIT, count - done)
            self.journal.append_many([(record.TYPE_TRANSACTION, self._payload(done + k, self.created_ms))
                                      for k in range(n)])
            done += n
        self.sales = count

    def _payload(self, n, now_ms):
        return sale_payload(self.device_id, n, 1000 + (n * 37) % 90000, self.merchant,
                            _iso(now_ms))

    # -- events from the simulation and the adapter ---------------------------

    def sell(self, now):
        """One sale, committed (signed checkpoint) before this returns."""
        try:
            appended = self.journal.append(record.TYPE_TRANSACTION, self._payload(self.sales, now))
        except JournalFull:
            self.sales_refused += 1
            return False
        self.sales += 1
        self._pending.append((appended.seq, now))
        self.core.journal_progress(self.journal.ring.next_seq)
        return True

    def step(self, now):
        return self._run(self.core.poll(now), now)

    def connected(self, now):
        return self._run(self.core.connected(now), now)

    def lost(self, now, rand, cause=""):
        return self._run(self.core.lost(now, rand, cause), now)

    def puback(self, token, now):
        return self._run(self.core.puback(token, now), now)

    def down_message(self, leaf, payload, now):
        return self._run(self.core.message(leaf, payload, now), now)

    def status_due(self, now):
        """Counters changed and the last status is status_interval_ms old."""
        return (now - self._status_at >= self.status_interval_ms
                and self._status_key != (self.sales, self.core.acked))

    def status_payload(self, now, state="online"):
        """The retained status with the terminal's own counters (small)."""
        h = self.core.health()
        self._status_at = now
        self._status_key = (self.sales, self.core.acked)
        return msgs.encode_status(self.device_id, state, now, {
            "c": {"sales": self.sales, "acked": h["acked"], "backlog": h["backlog"],
                  "published": h["published"], "rejected": h["rejected"],
                  "reconnects": h["reconnects"], "refused": self.sales_refused}})

    @property
    def backlog(self):
        return self.journal.ring.next_seq - self.core.acked

    @property
    def drained(self):
        return self.core.acked >= self.journal.ring.next_seq

    # -- the core's actions ----------------------------------------------------

    def _run(self, actions, now):
        """Perform read/ack/reject locally; return what the adapter must do."""
        out = []
        while actions:
            more = []
            for action in actions:
                kind = action[0]
                if kind == "read":
                    records, end, last_hash = self.reader.read(action[1], action[2])
                    more.extend(self.core.frames(records, end, last_hash, now))
                elif kind == "ack":
                    self._acked(action[1], now)
                elif kind == "reject":
                    self.rejects += 1
                elif kind == "publish":
                    if action[1] == "status":
                        action = ("publish", "status", self.status_payload(now), action[3], action[4])
                    out.append(action)
                elif kind == "connect":
                    out.append(action)
            actions = more
        return out

    def _acked(self, to, now):
        before = self.records_acked
        self.records_acked = to - self.first_seq_to_send
        self.journal.note_cursors(to, to)
        pending = self._pending
        while pending and pending[0][0] < to:
            self.lags_ms.append(now - pending.popleft()[1])
        return self.records_acked - before
