"""The agent's sync state machine (docs/SPEC.md §6).  Sans-IO.

The journal is the outbox: this core decides what to publish next, and
moves the `acked` cursor only on a backend ack that passed every check.
It never touches a socket, a file or a clock.  SyncAgent (sync_agent.py)
wraps it with the rules that join it to the journal; the I/O adapters
(agent/mqtt_link.py, firmware/umqtt_link.py) drive that.

Inputs (methods)                       Outputs (actions, tuples)
  poll(now)                              ("connect",)
  connected(now) / lost(now, rand)       ("read", from_seq, max_bytes)
  frames(records, end, last_hash, now)   ("publish", topic, payload, token, retain)
  puback(token, now)                     ("ack", to, head, payload)   anchor + cursors
  message(topic, payload, now)           ("reject", reason, detail)  count + security alert
  journal_progress(next_seq)             ("duplicate", to)
  queue_alert(payload)                   ("settlement", msg, payload) to the settlement hook
                                         ("log", event, fields)

`records` given to frames() are (seq, type, frame bytes) in sequence order.
Connection states and their transitions are the table CONNECTION; an event
the table does not allow raises IllegalTransition and changes nothing.
Reconnect delays are capped exponential backoff with full jitter
(delay = rand * min(cap, base * 2^attempt)), `rand` in [0, 1) an input.
Portable: CPython and MicroPython.
"""

from daozhang.agent.core.errors import LocalError
from daozhang.agent.core.sync import deposit_alert, settlement_ack, settlement_delivery
from daozhang.agent.core.sync import sync_messages as msgs

OFFLINE = "offline"
CONNECTING = "connecting"
ONLINE = "online"

# (state, event) -> new state.  "retry_due": the backoff delay has passed.
CONNECTION = {
    (OFFLINE, "retry_due"): CONNECTING,
    (CONNECTING, "connected"): ONLINE,
    (CONNECTING, "lost"): OFFLINE,
    (ONLINE, "lost"): OFFLINE,
    (OFFLINE, "lost"): OFFLINE,
}

TYPE_CHECKPOINT = 8
TYPE_PADDING = 10               # fills a commit to its sector (SPEC 3.9): no news either
READ_RETRY_MS = 1000
MAX_SENT_HASHES = 256
# Each ack timeout in a row doubles the next, up to 2**3 times the setting: a
# backend too slow to ack within the timeout is not helped by the whole
# fleet resending its windows (seen at 10,000 terminals: 7-17 publishes a sale).
MAX_ACK_TIMEOUT_DOUBLINGS = 3

DEFAULTS = {
    "max_inflight": 8,            # receipts messages published but not yet acked by the backend
    "max_batch_bytes": 65536,     # frames per message, in bytes (one frame may exceed it alone)
    # alert messages waiting to go up (all are also journaled); up to 64
    # transitions each, ~18 KB: 256 of them were 4.5 MiB of an outage burst
    "max_alerts": 64,
    "backoff_base_ms": 500,
    "backoff_cap_ms": 60000,
    "ack_timeout_ms": 15000,      # no backend ack for this long: resend from `acked`
    "idle_checkpoint_ms": 300000,  # a batch of checkpoints alone goes up at most this often
}


# The down messages the agent accepts on its acks topic (SPEC 6.4, 7.8).
DOWN_KINDS = msgs.down_kinds({settlement_ack.KIND: settlement_ack.DOWN_KIND,
                              deposit_alert.KIND: deposit_alert.DOWN_KIND})


class IllegalTransition(LocalError):
    """A connection event the CONNECTION table does not allow in this state."""


class SyncCore:
    def __init__(self, device_id, backend_pub, backend_kid, verify, hash_at, acked, next_seq,
                 settings=None, down_kinds=DOWN_KINDS):
        self.device_id = device_id
        self.down_kinds = down_kinds
        self.backend_pub = backend_pub
        self.backend_kid = backend_kid
        self.verify = verify
        self.hash_at = hash_at          # seq -> record hash in the journal, or None
        self.settings = dict(DEFAULTS)
        if settings:
            for key in settings:
                if key not in DEFAULTS:
                    raise LocalError("sync setting %r unknown (known: %s)"
                                     % (key, ", ".join(sorted(DEFAULTS))))
                self.settings[key] = settings[key]
        if acked > next_seq:
            raise LocalError("acked %d beyond the journal's next seq %d" % (acked, next_seq))
        self.state = OFFLINE
        self.retry_at = 0               # connect at the first poll
        self.attempt = 0
        self.acked = acked
        self.ack_head = None
        self.next_seq = next_seq        # committed records are < next_seq
        self.next_send = acked
        self.window = []                # [token, first, end] of receipts messages, in order
        self.sent_hashes = {}           # end -> hash of record end-1, for ack checks
        self.reading = False
        self.read_retry_at = 0
        self.hold_end = None            # pending frames up to here are checkpoints only
        self.last_data_at = None
        self.last_progress = 0
        self.ack_timeouts = 0           # in a row, without an ack between them
        self.alerts = []                # [payload, token or None]
        self.next_token = 1
        self.tokens = {}                # token -> "receipts" | "alerts" | "status"
        # health counters
        self.reconnects = 0
        self.connects = 0
        self.rejected = {}
        self.duplicates = 0
        self.alerts_dropped = 0
        self.published = 0
        self.last_reject = None

    # -- connection -----------------------------------------------------------

    def _transition(self, event):
        new = CONNECTION.get((self.state, event))
        if new is None:
            raise IllegalTransition("connection event %r not allowed in state %r" % (event, self.state))
        self.state = new

    def connected(self, now):
        self._transition("connected")
        self.connects += 1
        self.attempt = 0
        self.last_progress = now
        token = self._token("status")
        return [("publish", "status", msgs.encode_status(self.device_id, "online", now), token, True),
                ("log", "sync_online", {"acked": self.acked, "next_seq": self.next_seq})]

    def lost(self, now, rand, cause=""):
        """The connection dropped, or a connect attempt failed; schedule the next."""
        was = self.state
        self._transition("lost")
        if was == ONLINE:
            self.reconnects += 1
        delay = int(rand * min(self.settings["backoff_cap_ms"],
                               self.settings["backoff_base_ms"] * (1 << min(self.attempt, 30))))
        self.attempt += 1
        self.retry_at = now + delay
        # Whatever was in flight may be lost with the broker's memory: resend
        # from the last ack; the backend stores idempotently.
        self.next_send = self.acked
        self.window = []
        self.reading = False
        self.tokens = {}
        for alert in self.alerts:
            alert[1] = None
        return [("log", "sync_offline", {"was": was, "retry_in_ms": delay, "cause": cause,
                                         "attempt": self.attempt})]

    # -- journal side ---------------------------------------------------------------

    def journal_progress(self, next_seq):
        if next_seq > self.next_seq:
            self.next_seq = next_seq

    def queue_alert(self, payload):
        if len(self.alerts) >= self.settings["max_alerts"]:
            # Drop the oldest not in flight; every alert is also a journal record.
            for i, alert in enumerate(self.alerts):
                if alert[1] is None:
                    del self.alerts[i]
                    self.alerts_dropped += 1
                    break
            else:
                self.alerts_dropped += 1
                return
        self.alerts.append([payload, None])

    # -- time -----------------------------------------------------------------------

    def poll(self, now):
        out = []
        if self.state == OFFLINE:
            if now >= self.retry_at:
                self._transition("retry_due")
                out.append(("connect",))
            return out
        if self.state != ONLINE:
            return out
        # Alerts go up before receipts (SPEC 6.2).
        for alert in self.alerts:
            if alert[1] is None:
                alert[1] = self._token("alerts")
                out.append(("publish", "alerts", alert[0], alert[1], False))
        if self.window and now - self.last_progress >= self._ack_timeout_ms():
            out.append(("log", "sync_ack_timeout", {"acked": self.acked, "resend_from": self.acked,
                                                    "in_flight": len(self.window)}))
            self.ack_timeouts += 1
            self.window = []
            self.next_send = self.acked
            self.last_progress = now
        if self.reading or len(self.window) >= self.settings["max_inflight"]:
            return out
        if self.next_send >= self.next_seq or now < self.read_retry_at:
            return out
        if self.hold_end is not None and self.next_seq <= self.hold_end and not self._idle_due(now):
            return out
        self.reading = True
        out.append(("read", self.next_send, self.settings["max_batch_bytes"]))
        return out

    def _ack_timeout_ms(self):
        return self.settings["ack_timeout_ms"] << min(self.ack_timeouts, MAX_ACK_TIMEOUT_DOUBLINGS)

    def _idle_due(self, now):
        return self.last_data_at is None or now - self.last_data_at >= self.settings["idle_checkpoint_ms"]

    def next_wakeup(self, now):
        """Milliseconds until poll() has timed work to do (None: only on input)."""
        if self.state == OFFLINE:
            return max(0, self.retry_at - now)
        if self.state != ONLINE:
            return None
        times = []
        if self.window:
            times.append(self.last_progress + self._ack_timeout_ms())
        if self.hold_end is not None and self.next_send < self.next_seq and self.last_data_at is not None:
            times.append(self.last_data_at + self.settings["idle_checkpoint_ms"])
        return max(0, min(times) - now) if times else None

    # -- publishing -------------------------------------------------------------------

    def _token(self, kind):
        token = self.next_token
        self.next_token += 1
        self.tokens[token] = kind
        return token

    def frames(self, records, end, last_hash, now):
        """The adapter's answer to ("read", from_seq, ...): records from_seq..end-1."""
        if not self.reading:
            return []      # a read answered after a disconnect: drop it
        self.reading = False
        if not records:
            # Nothing readable at next_send (a damaged journal): retry later, not in a loop.
            self.read_retry_at = now + READ_RETRY_MS
            return []
        if self.state != ONLINE:
            return []
        first = records[0][0]
        if first != self.next_send or end != records[-1][0] + 1:
            raise LocalError("frames %d..%d do not continue at %d" % (first, end - 1, self.next_send))
        only_checkpoints = True
        for rec in records:
            if rec[1] != TYPE_CHECKPOINT and rec[1] != TYPE_PADDING:
                only_checkpoints = False
                break
        if only_checkpoints and end >= self.next_seq and not self._idle_due(now):
            # Nothing new but cursor checkpoints: wait for real records or the
            # slow timer, else every ack would cause the next batch (SPEC 6.6).
            self.hold_end = end
            return []
        self.hold_end = None
        self.last_data_at = now
        payload = msgs.encode_receipts(self.device_id, [rec[2] for rec in records])
        token = self._token("receipts")
        if not self.window:
            self.last_progress = now
        self.window.append([token, first, end])
        self.sent_hashes[end] = last_hash
        if len(self.sent_hashes) > MAX_SENT_HASHES:
            del self.sent_hashes[min(self.sent_hashes)]
        self.next_send = end
        self.published += 1
        return [("publish", "receipts", payload, token, False)]

    def puback(self, token, now):
        kind = self.tokens.pop(token, None)
        if kind == "alerts":
            for i, alert in enumerate(self.alerts):
                if alert[1] == token:
                    del self.alerts[i]
                    break
        return []

    # -- down messages -------------------------------------------------------------------

    def message(self, topic, payload, now):
        """A message on one of our down topics ("acks" or "config")."""
        if topic != "acks":
            return [("log", "sync_config_ignored", {"bytes": len(payload)})]
        try:
            batch = settlement_delivery.decode_batch(payload, self.device_id)
        except msgs.DownRejected as exc:
            return self._reject(exc.reason, str(exc))
        if batch is not None:
            return self._settlement_batch(batch)
        try:
            msg = msgs.decode_down(payload, self.device_id, self.backend_pub, self.backend_kid,
                                   self.verify, self.down_kinds)
            if msg["kind"] == "receipts":
                return self._receipts_ack(msg, payload, now)
            if msg["kind"] == settlement_ack.KIND:
                return [("settlement", msg, payload)]
            if msg["kind"] == deposit_alert.KIND:
                return [("deposit", msg)]
            return [("log", "sync_down_kind", {"kind": msg["kind"]})]
        except msgs.DownRejected as exc:
            return self._reject(exc.reason, str(exc))

    def _settlement_batch(self, acks):
        """Each ack of a batch authenticated on its own (SPEC 7.8.7): the good
        ones go to the settlement plugin together (one journal commit), a bad
        one is rejected and named without spoiling the rest."""
        good, actions = [], []
        for payload in acks:
            try:
                msg = msgs.decode_down(payload, self.device_id, self.backend_pub, self.backend_kid,
                                       self.verify, self.down_kinds)
            except msgs.DownRejected as exc:
                actions.extend(self._reject(exc.reason, str(exc)))
                continue
            if msg["kind"] != "settlement":
                actions.extend(self._reject(msgs.SCHEMA, "a %s message inside a settlement batch"
                                            % msg["kind"]))
                continue
            good.append((msg, payload))
        if good:
            actions.append(("settlements", good))
        return actions

    def _reject(self, reason, detail):
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self.last_reject = reason
        return [("reject", reason, detail)]

    def _head_of(self, to):
        if to == 0:
            return b"\x00" * msgs.HASH_SIZE
        known = self.sent_hashes.get(to)
        return known if known is not None else self.hash_at(to - 1)

    def _receipts_ack(self, msg, payload, now):
        to, head = msg["to"], msg["head"]
        if to > self.next_seq:
            return self._reject(msgs.BEYOND_HEAD, "ack to %d, the journal's next seq is %d"
                                % (to, self.next_seq))
        if to < self.acked:
            return self._reject(msgs.REPLAY, "ack to %d, already acked to %d" % (to, self.acked))
        if head != self._head_of(to):
            return self._reject(msgs.HEAD_MISMATCH, "ack head for seq %d is not the journal's hash"
                                % (to - 1))
        if to == self.acked:
            # The same ack again (QoS 1 redelivery, a republished ack): harmless.
            self.duplicates += 1
            return [("duplicate", to)]
        self.acked = to
        self.ack_head = head
        if self.next_send < to:
            self.next_send = to
        self.window = [w for w in self.window if w[2] > to]
        for end in list(self.sent_hashes):
            if end < to:
                del self.sent_hashes[end]
        self.last_progress = now
        self.attempt = 0
        self.ack_timeouts = 0
        return [("ack", to, head, payload)]

    # -- health ---------------------------------------------------------------------------

    def health(self):
        return {"state": self.state, "acked": self.acked, "next_seq": self.next_seq,
                "backlog": self.next_seq - self.acked, "in_flight": len(self.window),
                "reconnects": self.reconnects, "connects": self.connects,
                "rejected": sum(self.rejected.values()), "rejected_by_reason": dict(self.rejected),
                "duplicate_acks": self.duplicates, "alerts_waiting": len(self.alerts),
                "alerts_dropped": self.alerts_dropped, "published": self.published}
