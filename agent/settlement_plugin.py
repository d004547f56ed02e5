"""The settlement watchdog and the alert machine inside the agent daemon
(docs/SPEC.md §7.8.4; agent/daemon.py's PLUGINS hook).

Wiring (the same as tests/dztest/settlement.py's SimTerminal, plus I/O):

- every committed transaction (daemon.transaction_listeners) feeds the
  watchdog;
- every settlement ack that passed the sync layer's common checks
  (daemon.settlement_hook, from agent/mqtt_link.py) is checked for replay
  (its id), fed to the watchdog, and journaled as a type 2 record
  {"ack": the payload as received, "checks": [check results]};
- the daemon's alert hook (journal_full, storage_error, security from
  rejected messages, journal_near_full) and this plugin's own observations
  (clock_untrusted from the daemon's clock guard, sync_backlog from the
  sync link) go into the same AlertMachine;
- every alert transition is journaled (type 3, the action dict plus
  nothing else), published on daozhang/v1/<dev>/alerts through the sync
  link (with `seq`, the type 3 record's seq), summarised in the retained
  status, written to alerts.json next to agent.toml (what `daozhang agent
  alerts` reads), and shown on the board's outputs (agent/outputs.py);
- the journal's `released` cursor: daemon.release_floor is the watchdog's
  release_cursor() (a sale is released only when settled or expired).

State lives in a SQLite index beside the journal (agent/sale_index_sqlite.py,
docs/adr/on-disk-sale-index.md): every transaction the watchdog knows, the
settlement results, the accepted ack ids, and the alert machine's records
and the clock state as of its cursor.  Memory holds no per-sale state.
After a restart only the journal records after the index's cursor are
replayed: transactions, settlement acks and clock records into the watchdog
(outputs dropped), alert records restored into the machine; a missing or
stale index is rebuilt so from the whole journal.  Then the current clock
state is observed and a first tick runs.  The index commits (with a new
cursor) after each settlement ack and hook alert, and every tick.

Threads: intake threads (transactions), the MQTT thread (settlement acks,
sync alerts), the daemon's main thread (journal_full from heartbeats) and
this plugin's own thread (ticks every second, LED/buzzer every 100 ms) all
go through one lock.
"""

import hashlib
import heapq
import itertools
import json
import os
import threading
import time

from daozhang.agent.core import cbor, record
from daozhang.agent.core import settlement_ack  # noqa: F401  (registers the settlement kind)
from daozhang.agent.core.alerts import AlertMachine, ReplayMismatch
from daozhang.agent.core.business_calendar import BusinessCalendar
from daozhang.agent.core.errors import DaozhangError, JournalFull, StorageError
from daozhang.agent.core.watchdog import SettlementWatchdog
from daozhang.agent import settlement_apply
from daozhang.agent.alert_store_sqlite import SqliteAlertStore
from daozhang.agent.index_db import index_path
from daozhang.agent.outputs import DeviceOutputs
from daozhang.agent.replay_records import readable_records
from daozhang.agent.startup_progress import StartupProgress
from daozhang.agent.sale_index_sqlite import SqliteSaleIndex
from daozhang.agent.timezone import timezone_for
from daozhang.files import atomic_write

TICK_S = 1.0
REFRESH_S = 0.1
CLEARED_STATES = ("clear", "resolved", "withdrawn", "expired", "inactive")
# sync_backlog: records waiting while the link is down, or this many at any time.
BACKLOG_ALERT_RECORDS = 10000
# A rebuild from the whole journal commits the index this often (transactions).
REPLAY_COMMIT_EVERY = 50000
# Committed sales judged per pass of the settlement thread (one journal append
# of their alert actions, one publish batch, one display refresh).
DRAIN_BATCH = 512
# Committed sales waiting with their payloads; more wait as a seq only.
QUEUE_PAYLOADS = 4096
# alerts.json and the display are rewritten at most this often (seconds).
SHOW_EVERY_S = 0.5
# alerts.json lists at most this many single alerts; the groups count them all.
ALERTS_FILE_LIMIT = 200


def alerts_file_path(agent_config_path):
    return os.path.join(os.path.dirname(os.path.abspath(agent_config_path)), "alerts.json")


def _plain(value):
    """CBOR/JSON-safe copy of an alert detail (str keys, no floats, no tuples)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def ack_digest(payload):
    """8 bytes naming an ack's exact bytes: a redelivery is byte-identical."""
    return hashlib.sha256(bytes(payload)).digest()[:8]


def _write_json_atomic(path, obj):
    atomic_write(path, json.dumps(obj, sort_keys=True, ensure_ascii=False), durable=True)


def restore_action(machine, action):
    """Replay one journaled alert action into `machine`, tolerantly."""
    try:
        machine.restore(action)
    except ReplayMismatch:
        # The journal is a ring: the alert's earlier transitions may have
        # been reclaimed.  The action carries the alert's whole record.
        ident = (action.get("kind"), action.get("key"))
        if action.get("state") == "inactive" or action.get("action") == "withdrawn":
            machine.drop(ident)
        else:
            machine.put_record(action)


class SettlementPlugin:
    def __init__(self, daemon):
        self.daemon = daemon
        self.log = daemon.log
        self.journal = daemon.journal
        self.device_id = daemon.config["device_id"]
        profile = daemon.service.profile
        self.profile = profile
        calendar = BusinessCalendar.from_profile(profile, timezone_for(profile["timezone"]))
        self.index = SqliteSaleIndex(index_path(self.journal, "watchdog"), self.journal,
                                     log=self.log)
        self.watchdog = SettlementWatchdog(profile, calendar, index=self.index)
        # The machine's records live in the same file (one row each, indexed
        # by deadline): memory stays flat whatever an outage raises.
        self.machine = AlertMachine(profile.get("currency", "CNY"),
                                    store=SqliteAlertStore(self.index.db))
        # The index also keeps accepted ack id -> ack_digest of its bytes (the
        # replay guard).  The digest tells a broker redelivery of the very
        # same ack (harmless) from another message reusing its id.
        self._saved_clock = None
        self.outputs = DeviceOutputs({"outputs": daemon.config.get("outputs", {})})
        self.alerts_file = alerts_file_path(daemon.config["path"])
        self.link = None
        self.counts = {"settlement_acks": 0, "duplicates": 0, "replays": 0, "invalid": 0,
                       "redelivered": 0}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = None
        # Committed sales not yet judged: a heap of (seq, payload), consumed
        # by this plugin's thread in journal order (never on the POS's reply
        # path).  Before start() (no thread yet) they are judged at once.
        self._incoming = []
        self._incoming_lock = threading.Lock()
        self._inline = True
        self._show_due = False
        self._last_show = 0.0
        self._replay()
        daemon.transaction_listeners.append(self.on_transaction)
        daemon.settlement_hook = self.on_settlement
        daemon.settlements_hook = self.on_settlements
        daemon.release_floor = self.release_floor
        daemon.alert_hook = self.on_hook_alert
        daemon.settlement = self

    def now(self):
        return self.daemon.now_ms()

    # -- rebuild ---------------------------------------------------------------

    def _replay_damaged(self, error, segment_first_seq, resume_seq):
        self.log("replay_skipped_damage", level="critical", part="settlement", segment_first_seq=segment_first_seq,
                 resume_seq=resume_seq, error=str(error))

    def _replay(self):
        """The index as of its cursor, then the journal records after it."""
        # Alert observations of the type 2 records after the last alert
        # record: a crash between the settlement's commit and its alert
        # actions' commit lost those; start() observes them again (the
        # machine ignores what it already holds).
        self._unjournaled_obs = []
        t0 = time.monotonic()
        cursor = self.index.cursor
        self.settle_cursor = settlement_apply.load_cursor(self.index)
        if cursor is not None:
            # The alert records are in the index file already (as of its cursor).
            trusted, last_trusted = self.index.load_clock()
            self.watchdog.clock_trusted = trusted
            self.watchdog.last_trusted_now = last_trusted
        counts = {"transactions": 0, "settlements": 0, "clock": 0, "alerts": 0, "mismatch": 0}
        last = cursor
        progress = StartupProgress("settlement", self.log)
        for rec in readable_records(self.journal, None if cursor is None else cursor + 1, self._replay_damaged):
            last = rec.seq
            progress.record(rec.seq)
            if counts["transactions"] and counts["transactions"] % REPLAY_COMMIT_EVERY == 0 \
                    and rec.type == record.TYPE_TRANSACTION and not self._unjournaled_obs:
                # A long rebuild resumes from here if cut short.
                self._checkpoint(rec.seq - 1)
            try:
                if rec.type == record.TYPE_TRANSACTION:
                    txn = dict(rec.payload)
                    txn["seq"] = rec.seq
                    self.watchdog.handle(("transaction", txn))
                    counts["transactions"] += 1
                elif rec.type == record.TYPE_SETTLEMENT_ACK:
                    msg = cbor.loads(rec.payload["ack"])
                    self.index.put_ack(msg["id"], ack_digest(rec.payload["ack"]), msg["at"])
                    if isinstance(msg.get("n"), int):     # SPEC 7.8.7 (absent before v2)
                        self.settle_cursor.done(msg["n"])
                    outputs = self.watchdog.handle(("settlement", msg["row"], rec.wall_ms))
                    self._unjournaled_obs.extend(out for tag, out in outputs if tag == "alert")
                    counts["settlements"] += 1
                elif rec.type == record.TYPE_CLOCK:
                    trusted = rec.payload.get("event") == "trusted"
                    self.watchdog.handle(("clock", trusted, rec.wall_ms))
                    counts["clock"] += 1
                elif rec.type == record.TYPE_ALERT:
                    self._restore(rec.payload)
                    # A settlement's alert actions are committed right after
                    # its type 2 record: any alert record after it means they
                    # made it (the machine holds them).
                    self._unjournaled_obs = []
                    counts["alerts"] += 1
            except (DaozhangError, KeyError, TypeError) as exc:
                counts["mismatch"] += 1
                self.log("settlement_replay_skipped", level="warning", seq=rec.seq,
                         error="%s: %s" % (type(exc).__name__, exc))
        if last is not None and not self._unjournaled_obs:
            settlement_apply.save_cursor(self.index, self.settle_cursor)
            self._checkpoint(last)
        self.log("settlement_rebuilt", cursor=cursor, index=self.index.db.rebuilt or "reused",
                 seconds="%.3f" % (time.monotonic() - t0), **counts)

    def _restore(self, action):
        restore_action(self.machine, action)

    def _checkpoint(self, cursor):
        """Commit the index: every journal record up to `cursor` is in it."""
        clock = (self.watchdog.clock_trusted, self.watchdog.last_trusted_now)
        if clock != self._saved_clock and (self.index.db.dirty or not clock[0]):
            # last_trusted_now moves every tick: written with other changes only.
            self.index.save_clock(*clock)
            self._saved_clock = clock
        self.index.checkpoint(cursor)

    def _safe_cursor(self):
        """The highest seq up to which every journal record has reached this
        plugin: transactions still on their way from the intake (committed,
        their listener not yet called) hold it back."""
        floor = self._listeners_floor()
        with self._incoming_lock:
            if self._incoming and self._incoming[0][0] - 1 < floor:
                floor = self._incoming[0][0] - 1   # committed, not yet judged
        return floor

    def _listeners_floor(self):
        floor = getattr(self.daemon.service, "listeners_floor", None)
        if callable(floor):
            return floor()
        return self.journal.ring.next_seq - 1

    # -- plugin face -------------------------------------------------------------

    def start(self):
        self.link = getattr(self.daemon, "sync_link", None)
        if self.link is not None:
            # The sync link's own alerts (security, journal_near_full) come here,
            # and go up as alert machine transitions, not as raw hook calls.
            self.link.alert = self.on_hook_alert
            if hasattr(self.link, "status_extra"):
                self.link.status_extra = self.status_summary
        self.daemon.alert_hook = self.on_hook_alert
        with self._lock:
            now = self.now()
            for obs in self._unjournaled_obs:
                self._observe(obs, now)
            self._unjournaled_obs = []
            self._feed(("clock", bool(self.daemon.clock.trusted), now), now)
            self._feed(("tick", now), now)
            self._show()
        self._inline = False
        self._thread = threading.Thread(target=self._run, name="settlement", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.outputs.close()
        with self._lock:
            try:
                self._checkpoint(self._safe_cursor())
            finally:
                self.index.close()

    def alive(self):
        return self._thread is not None and self._thread.is_alive()

    def _run(self):
        last_tick = 0.0
        while not self._stop.wait(REFRESH_S):
            try:
                while self.drain() == DRAIN_BATCH:
                    pass
                self.outputs.refresh(self.now())
                mono = time.monotonic()
                if mono - last_tick >= TICK_S:
                    last_tick = mono
                    self.tick()
                if self._show_due and mono - self._last_show >= SHOW_EVERY_S:
                    with self._lock:
                        self._show()
            except Exception as exc:  # never let the watchdog thread die silently
                self.log("settlement_tick_error", level="error",
                         error="%s: %s" % (type(exc).__name__, exc))

    def pending_sales(self):
        """Committed sales not yet judged by the watchdog."""
        with self._incoming_lock:
            return len(self._incoming)

    def drain(self):
        """Judge committed sales in journal order, up to the intake's floor
        (every transaction below it has reached us), DRAIN_BATCH at most;
        returns how many.  A sale journaled after its deadline is judged
        here, in the same pass, not at the next tick."""
        with self._lock:
            floor = self._listeners_floor()
            with self._incoming_lock:
                batch = []
                while self._incoming and self._incoming[0][0] <= floor \
                        and len(batch) < DRAIN_BATCH:
                    batch.append(heapq.heappop(self._incoming))
            if not batch:
                return 0
            batch = self._with_payloads(batch)
            now = self.now()
            full = self.machine.alerts.get(("journal_full", "device"))
            if full is not None and full["state"] in ("pending", "firing"):
                # A committed sale proves the journal takes records again.
                self._observe({"kind": "journal_full", "key": "device", "active": False,
                               "at": now}, now)
            actions = []
            late = False
            for seq, payload in batch:
                txn = dict(payload)
                txn["seq"] = seq
                try:
                    actions.extend(self._judge(("transaction", txn, now), now))
                except DaozhangError as exc:
                    # One sale the checks refuse must not cost the others their judging.
                    self.log("settlement_txn_skipped", level="error", seq=seq,
                             error="%s: %s" % (type(exc).__name__, exc))
                deadline = self.watchdog.watched_deadline(txn.get("pos_txn_id"))
                late = late or (deadline is not None and deadline < now)
            if late:
                actions.extend(self._judge(("tick", now), now))
            self._emit(actions)
            return len(batch)

    def _with_payloads(self, batch):
        """`batch` (seq order) with every payload the queue dropped read back
        from the journal, in one pass over the records it spans."""
        missing = [seq for seq, payload in batch if payload is None]
        if not missing:
            return batch
        wanted, found = set(missing), {}
        for rec in self.journal.records(from_seq=missing[0]):
            if rec.seq > missing[-1]:
                break
            if rec.seq in wanted:
                found[rec.seq] = rec.payload
        return [(seq, payload if payload is not None else found.get(seq))
                for seq, payload in batch if payload is not None or seq in found]

    def tick(self):
        self.drain()
        with self._lock:
            now = self.now()
            trusted = bool(self.daemon.clock.trusted)
            if trusted != self.watchdog.clock_trusted:
                self._feed(("clock", trusted, now), now)
            self._check_backlog(now)
            self._feed(("tick", now), now)
            if self.watchdog.last_prune == now:
                self.index.forget_acks(now - self.watchdog.expire_after)
            self._checkpoint(self._safe_cursor())

    def _check_backlog(self, now):
        link = self.link
        if link is None or not hasattr(link, "core"):
            return
        core = link.core
        backlog = core.next_seq - core.acked
        active = backlog >= BACKLOG_ALERT_RECORDS or (backlog > 0 and core.state != "online")
        rec = self.machine.alerts.get(("sync_backlog", "device"))
        if active or (rec is not None and rec["state"] in ("pending", "firing")):
            self._observe({"kind": "sync_backlog", "key": "device", "active": active, "at": now,
                           "detail": {"backlog": backlog, "link": core.state}}, now)

    # -- inputs --------------------------------------------------------------------

    def on_transaction(self, seq, payload):
        """A committed transaction (the intake's listener): queued, nothing
        more on the POS's reply path; the settlement thread judges it."""
        with self._incoming_lock:
            # Past QUEUE_PAYLOADS waiting, only the seq waits: the payload is
            # read back from the journal when judged (memory stays bounded
            # if the POS outruns the watchdog for a long time).
            keep = payload if len(self._incoming) < QUEUE_PAYLOADS else None
            heapq.heappush(self._incoming, (seq, keep))
        if self._inline:
            self.drain()
        # Else the settlement thread judges it within REFRESH_S: a pass every
        # 100 ms batches an outage's alert actions into few journal commits,
        # which then rarely delay a POS's own commit.

    def on_settlement(self, msg, payload, redelivered=False):
        """One settlement ack that passed decode_down (schema, device, key, signature)."""
        return self.on_settlements([(msg, payload)], redelivered)

    def on_settlements(self, items, redelivered=False):
        """A batch of settlement acks, applied in one commit (agent/settlement_apply.py).
        Returns {"settle_n", "moved", "rejected"} for the sync link's status."""
        return settlement_apply.apply_batch(self, items, ack_digest)

    def on_hook_alert(self, kind, severity, detail):
        """alert_hook(kind, severity, detail) of the daemon and the sync link."""
        detail = detail if isinstance(detail, dict) else {"detail": detail}
        if kind not in self.machine.kinds or kind == "clock_untrusted":
            # clock_untrusted comes from the clock guard (tick); others are logged.
            self.log("alert_hook", level=severity, kind=kind, detail=detail.get("detail"))
            return
        active = detail.get("state", "firing") not in CLEARED_STATES
        key = str(detail.get("reason") or "message") if kind == "security" else "device"
        with self._lock:
            now = self.now()
            self._observe({"kind": kind, "key": key, "active": active, "at": now,
                           "detail": _plain(detail)}, now)
            self._checkpoint(self._safe_cursor())

    def release_floor(self):
        """The lowest seq the journal must keep for the watchdog: its own
        unsettled sales, and the committed sales not yet judged."""
        with self._lock:
            floor = self.watchdog.release_cursor()
            with self._incoming_lock:
                if self._incoming and (floor is None or self._incoming[0][0] < floor):
                    floor = self._incoming[0][0]
            return floor

    # -- the machine ------------------------------------------------------------------

    def _feed(self, event, now):
        self._emit(self._judge(event, now))

    def _judge(self, event, now):
        outputs = self.watchdog.handle(event)
        actions = []
        for tag, out in outputs:
            if tag == "alert":
                actions.extend(self.machine.observe(out))
        if event[0] == "tick":
            actions.extend(self.machine.tick(now))
        return actions

    def _observe(self, obs, now):
        self._emit(self.machine.observe(obs))

    def _emit(self, actions):
        if not actions:
            return
        before = {g["kind"]: g["severity"] for g in self.machine.groups()}
        actions = [_plain(a) for a in actions]
        seqs = [None] * len(actions)
        try:
            seqs = []
            for chunk in self._commit_chunks(actions):
                done = self.journal.append_many([(record.TYPE_ALERT, a) for a in chunk])
                seqs.extend(d.seq for d in done)
        except (JournalFull, StorageError) as exc:
            seqs.extend([None] * (len(actions) - len(seqs)))
            # Shown and published anyway; a reboot will not remember these.
            self.log("alert_journal_failed", level="error", error=str(exc))
        published = []
        for action, seq in zip(actions, seqs):
            self.log("alert", level="warning" if action["state"] == "firing" else "info",
                     action=action["action"], kind=action["kind"], key=action["key"],
                     severity=action["severity"], seq=seq)
            one = dict(action)
            one["seq"] = seq
            published.append(one)
        if self.link is not None:
            if hasattr(self.link, "publish_alerts"):
                self.link.publish_alerts(published)     # batched, many per message
            else:
                for one in published:
                    self.link.publish_alert(one)
        self.outputs.notify(actions, before)
        if self._inline:
            self._show()
        else:
            self._show_due = True     # the settlement thread shows it (SHOW_EVERY_S)

    def _commit_chunks(self, actions):
        """Split actions into commits of at most a quarter segment each: a
        first tick after a rebuild may emit thousands at once, and one
        commit must fit a segment (the rest is left to records sharing it)."""
        budget = self.journal.ring.capacity() // 4
        chunk, size = [], 0
        for action in actions:
            n = len(cbor.dumps(action)) + 64          # + the record frame's header
            if chunk and size + n > budget:
                yield chunk
                chunk, size = [], 0
            chunk.append(action)
            size += n
        if chunk:
            yield chunk

    def _show(self):
        """Display, status file and alerts.json: grouped lines and counts
        from the machine's index (O(kinds)), and at most ALERTS_FILE_LIMIT
        single alerts, so a flood costs the same to show as one alert."""
        self._show_due = False
        self._last_show = time.monotonic()
        now = self.now()
        summary = self.machine.status_summary(now)
        self.outputs.show(summary)
        alerts = self.current_alerts(ALERTS_FILE_LIMIT)
        try:
            _write_json_atomic(self.alerts_file, {
                "device": self.device_id, "at": now, "summary": summary,
                "alerts": alerts, "alerts_total": len(self.machine.alerts),
                "counts": dict(self.counts), "clock_trusted": self.watchdog.clock_trusted})
        except OSError as exc:
            self.log("alerts_file_failed", level="error", error=str(exc))

    # -- views (alerts CLI, status, service port) -------------------------------------

    def current_alerts(self, limit=None):
        """Alert records, sorted by (kind, key); with `limit`, the first
        `limit` the machine holds (O(limit), for views that must stay cheap)."""
        with self._lock:
            idents = self.machine.alerts
            if limit is not None:
                idents = itertools.islice(idents, limit)
            return [_plain(self.machine.alerts[i])
                    for i in sorted(idents, key=lambda i: (i[0], str(i[1])))]

    def status_summary(self):
        with self._lock:
            s = self.machine.status_summary(self.now())
            return {"alerts": {"firing": s["firing"], "pending": s["pending"],
                               "worst": s["worst"], "display": s["display"]},
                    "settle_n": self.settle_cursor.value}


def settlement_plugin(daemon):
    """PLUGINS factory: runs first, so release_floor is in place before the
    sync link adopts its saved ack anchor (which moves the cursors)."""
    return SettlementPlugin(daemon)


def install(daemon_module):
    if settlement_plugin not in daemon_module.PLUGINS:
        daemon_module.PLUGINS.insert(0, settlement_plugin)
