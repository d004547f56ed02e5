"""Settlement acks pending until the terminal confirms them (docs/SPEC.md 7.8.7).

`backend settle` used to mark a row sent once the broker PUBACKed it, so
the broker's queue was the only copy while the terminal was offline: lost
when mosquitto died before its save, when more than max_queued_messages
queued, or when another client took the terminal's client id with a clean
start.  Now:

- `Outbox.queue_many` numbers each device's acks 1, 2, 3, ... and keeps the
  signed bytes (settlement_outbox table), pending;
- the terminal's status carries `settle_n` (every ack 1..n processed):
  `Outbox.confirm` marks those confirmed, for good;
- `Resender` sends what is pending, many acks per message
  (settlement_delivery batches), the lowest `window` numbers at most, so a
  terminal's broker queue holds at most window / batch messages of ours
  (far under mosquitto's max_queued_messages).  It sends at once when the
  terminal comes online or its cursor moves (the next window), and again
  on a timer for what stayed unconfirmed longer than `resend_ms`.

Every re-send carries the very bytes first signed, so the terminal
recognises a duplicate by its id and digest and nothing changes twice.
"""

from daozhang.agent.core.sync import settlement_delivery
from daozhang.backend.store_rows import json_text

BATCH = 200                 # acks per message: ~110 KiB, under MAX_BATCH_BYTES
WINDOW = 2000               # unconfirmed acks in flight per device
RESEND_MS = 30000           # an unconfirmed ack is sent again after this
STALL_MS = 300000           # online, acks pending, settle_n unmoved this long: sync_stalled


class Outbox:
    """The settlement_outbox table, over a backend Store's database."""

    def __init__(self, store):
        self.store = store
        self.db = store.db
        self._lock = store._lock

    def queue_many(self, device_id, entries, now):
        """entries: [(acquirer_ref, make_payload(n) -> bytes)]; the numbers given, in order."""
        numbers = []
        with self._lock, self.db.transaction() as tx:
            tx.lock_device(device_id)
            top = tx.one("SELECT COALESCE(MAX(n), 0) FROM settlement_outbox WHERE device_id = %s",
                         (device_id,))[0]
            rows = []
            for ref, make_payload in entries:
                top += 1
                rows.append((device_id, top, ref, bytes(make_payload(top)), now))
                numbers.append(top)
            tx.executemany("INSERT INTO settlement_outbox (device_id, n, acquirer_ref, payload, "
                           "queued_at) VALUES (%s, %s, %s, %s, %s)", rows)
        return numbers

    def settle_rows(self, rows, now):
        """Store settlement rows, their verdicts and their acks in ONE
        transaction (one fsync for a chunk of a file, not two per row).
        rows: [(acquirer_ref, body, device_id, seq, verdict, make_payload or None)];
        an acquirer_ref already stored keeps its body.  Returns {device: [n, ...]}."""
        numbers = {}
        with self._lock, self.db.transaction() as tx:
            tx.executemany("INSERT INTO settlements (acquirer_ref, row, status, at) VALUES "
                           "(%s, %s, 'new', %s) ON CONFLICT (acquirer_ref) DO NOTHING",
                           [(ref, json_text(body, "settlement row"), now)
                            for ref, body, _, _, _, _ in rows])
            tops = {}
            queued = []
            for ref, _, device_id, _, _, make_payload in rows:
                if device_id is None or make_payload is None:
                    continue
                if device_id not in tops:
                    tx.lock_device(device_id)
                    tops[device_id] = tx.one("SELECT COALESCE(MAX(n), 0) FROM settlement_outbox "
                                             "WHERE device_id = %s", (device_id,))[0]
                tops[device_id] += 1
                n = tops[device_id]
                queued.append((device_id, n, ref, bytes(make_payload(n)), now))
                numbers.setdefault(device_id, []).append(n)
            tx.executemany("INSERT INTO settlement_outbox (device_id, n, acquirer_ref, payload, "
                           "queued_at) VALUES (%s, %s, %s, %s, %s)", queued)
            tx.executemany("UPDATE settlements SET device_id = %s, seq = %s, status = %s "
                           "WHERE acquirer_ref = %s",
                           [(device_id, seq, verdict, ref)
                            for ref, _, device_id, seq, verdict, _ in rows])
        return numbers

    def confirm(self, device_id, settle_n, now):
        """The terminal processed every ack up to settle_n: how many became confirmed."""
        with self._lock, self.db.transaction() as tx:
            cur = tx.execute("UPDATE settlement_outbox SET confirmed_at = %s WHERE device_id = %s "
                             "AND n <= %s AND confirmed_at IS NULL", (now, device_id, settle_n))
            return cur.rowcount

    def pending(self, device_id, limit):
        """[(n, payload, sent_at)] of the lowest `limit` unconfirmed acks."""
        with self._lock, self.db.read() as tx:
            rows = tx.all("SELECT n, payload, sent_at FROM settlement_outbox WHERE device_id = %s "
                          "AND confirmed_at IS NULL ORDER BY n LIMIT %s", (device_id, limit))
        return [(int(n), bytes(p), s) for n, p, s in rows]

    def mark_sent(self, device_id, numbers, now):
        with self._lock, self.db.transaction() as tx:
            tx.executemany("UPDATE settlement_outbox SET sent_at = %s WHERE device_id = %s AND n = %s",
                           [(now, device_id, n) for n in numbers])

    def devices_pending(self):
        with self._lock, self.db.read() as tx:
            rows = tx.all("SELECT DISTINCT device_id FROM settlement_outbox WHERE confirmed_at IS NULL")
        return sorted(r[0] for r in rows)

    def counts(self, device_id=None):
        """{"queued", "pending", "confirmed"} (of one device, or all)."""
        sql = ("SELECT COUNT(*), COALESCE(SUM(CASE WHEN confirmed_at IS NULL THEN 1 ELSE 0 END), 0) "
               "FROM settlement_outbox")
        params = ()
        if device_id is not None:
            sql += " WHERE device_id = %s"
            params = (device_id,)
        with self._lock, self.db.read() as tx:
            total, pending = tx.one(sql, params)
        return {"queued": int(total), "pending": int(pending), "confirmed": int(total) - int(pending)}


class Resender:
    """Sends pending acks: `publish(device_id, payload)` is the MQTT side."""

    def __init__(self, outbox, publish, log=None, batch=BATCH, window=WINDOW, resend_ms=RESEND_MS,
                 stall_ms=STALL_MS, on_stall=None):
        self.outbox = outbox
        self.publish = publish
        self.log = log or (lambda event, level="info", **kw: None)
        self.batch = batch
        self.window = window
        self.resend_ms = resend_ms
        self.cursors = {}       # device -> the last settle_n its status reported
        self.online = {}        # device -> True while its last status said online
        self.since = {}         # device -> online_since of that status (a new one: reconnected)
        # A delivery that cannot stall silently (SPEC 6.12): the terminal is
        # online, acks wait, and its settle_n has not moved for stall_ms.
        self.stall_ms = stall_ms
        self.on_stall = on_stall or (lambda device_id, detail: None)
        self.progress = {}      # device -> when it came online or its settle_n last moved
        self.stalled = {}       # device -> the detail raised

    def on_status(self, device_id, status, now):
        """A terminal's status: confirm up to its settle_n; when it comes
        online (its broker session may be gone) or its cursor moved (room
        for the next window), send what is due."""
        if not isinstance(status, dict):
            return 0
        settle_n = status.get("settle_n")
        moved = False
        if type(settle_n) is int and settle_n >= 0:
            moved = settle_n != self.cursors.get(device_id)
            self.cursors[device_id] = settle_n
            if settle_n:
                done = self.outbox.confirm(device_id, settle_n, now)
                if done:
                    self.log("settlements_confirmed", device=device_id, settle_n=settle_n, rows=done)
        online = status.get("state") == "online"
        since = status.get("online_since")
        came_online = online and (not self.online.get(device_id) or since != self.since.get(device_id))
        self.online[device_id] = online
        self.since[device_id] = since
        if came_online or moved:
            self.progress[device_id] = now
        if moved and device_id in self.stalled:
            del self.stalled[device_id]
            self.log("sync_moving", device=device_id, settle_n=settle_n)
        if came_online or (online and moved):
            return self.send(device_id, now, everything=came_online)
        return 0

    def tick(self, now):
        """The timer: what stayed unconfirmed longer than resend_ms, for every
        device whose cursor has not moved for resend_ms either (one that is
        confirming is busy with what it has: re-sending would only queue
        duplicates behind it)."""
        sent = 0
        for device_id in self.outbox.devices_pending():
            moved = self.progress.get(device_id)
            if moved is None or now - moved >= self.resend_ms:
                sent += self.send(device_id, now)
            self._check_stall(device_id, now)
        return sent

    def _check_stall(self, device_id, now):
        since = self.progress.get(device_id)
        if not self.online.get(device_id) or since is None or device_id in self.stalled \
                or now - since < self.stall_ms:
            return
        detail = {"reason": "settlement_acks_unconfirmed", "since": since,
                  "settle_n": self.cursors.get(device_id),
                  "pending": self.outbox.counts(device_id)["pending"]}
        self.stalled[device_id] = detail
        self.log("sync_stalled", level="error", device=device_id, **detail)
        self.on_stall(device_id, detail)

    def send(self, device_id, now, everything=False):
        """Publish the due acks of the device's window; returns how many.
        `everything`: the whole window, sent or not (a reconnect)."""
        rows = self.outbox.pending(device_id, self.window)
        due = [(n, payload) for n, payload, sent_at in rows
               if everything or sent_at is None or sent_at <= now - self.resend_ms]
        for k in range(0, len(due), self.batch):
            chunk = due[k:k + self.batch]
            self.publish(device_id, settlement_delivery.encode_batch(device_id, [p for _, p in chunk]))
            self.outbox.mark_sent(device_id, [n for n, _ in chunk], now)
        if due:
            self.log("settlements_sent", device=device_id, rows=len(due),
                     first=due[0][0], last=due[-1][0])
        return len(due)
