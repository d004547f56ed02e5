"""The settlement watchdog and the alert machine inside the agent daemon
(docs/SPEC.md §7.8.4).  Built and wired by agent/assemble.py.

Wiring (the same as tests/dztest/settlement.py's SimTerminal, plus I/O):

- every committed transaction (the intake's on_commit -> on_transaction)
  feeds the watchdog;
- every settlement ack that passed the sync layer's common checks (the
  link's settlements_hook -> on_settlements) is screened for replay and age
  (core/settlement_ack.screen), fed to the watchdog, and journaled as a
  type 2 record {"ack": the payload as received, "checks": [check results]}
  (agent/settlement_apply.py);
- every part's alert(kind, severity, detail) (journal_full, storage_error,
  journal_damaged, security from rejected messages, journal_near_full,
  sync_stalled) -> on_hook_alert, and this plugin's own observations
  (clock_untrusted from the clock guard, sync_backlog from the link's
  position()) go into the same AlertMachine;
- every alert transition is journaled (type 3, the action dict plus
  nothing else), published on daozhang/v1/<dev>/alerts through the link
  given to attach() (with `seq`, the type 3 record's seq), summarised in the
  retained status (status_summary, the link's status_extra), written to
  alerts.json next to agent.toml (agent/settlement_alerts.py), and shown on
  the board's outputs (agent/outputs.py);
- the journal's `released` cursor: the link's release_floor is this
  plugin's release_floor() (a sale is released only when settled or expired).

State lives in a SQLite index beside the journal (agent/sale_index_sqlite.py,
docs/adr/0004-on-disk-sale-index.md): every transaction the watchdog knows, the
settlement results, the accepted ack ids, and the alert machine's records
and the clock state as of its cursor.  Memory holds no per-sale state.
At construction the index catches up with the journal
(agent/settlement_rebuild.py); start() observes the current clock state and
runs a first tick.  The index commits (with a new cursor) after each
settlement ack and hook alert, and every tick.

Threads: intake threads (transactions), the MQTT thread (settlement acks,
sync alerts), the daemon's main thread (journal_full from heartbeats), the
scrub thread (journal_damaged) and this plugin's own thread (ticks every
second, LED/buzzer every 100 ms) all go through one lock.
"""

import heapq
import itertools
import threading
import time

from cbor2 import loads as _cbor2_loads

from daozhang.agent.core import cbor
from daozhang.agent.core.business_calendar import BusinessCalendar
from daozhang.agent.core.errors import DaozhangError
from daozhang.agent.core.settlement.alerts import AlertMachine
from daozhang.agent.core.settlement.watchdog import SettlementWatchdog
from daozhang.agent import settlement_apply
from daozhang.agent.alert_store_sqlite import SqliteAlertStore
from daozhang.agent.index_db import index_path
from daozhang.agent.core.sync import deposit_alert
from daozhang.agent.outputs import DeviceOutputs
from daozhang.agent.sale_index_sqlite import SqliteSaleIndex
from daozhang.agent.settlement_alerts import (
    ALERTS_FILE_LIMIT, journal_actions, plain as _plain, write_alerts_file)
from daozhang.agent.settlement_rebuild import rebuild
from daozhang.timezone import timezone_for

TICK_S = 1.0
REFRESH_S = 0.1
CLEARED_STATES = ("clear", "resolved", "withdrawn", "expired", "inactive")
# sync_backlog: records waiting while the link is down, or this many at any time.
BACKLOG_ALERT_RECORDS = 10000
# Committed sales judged per pass of the settlement thread (one journal append
# of their alert actions, one publish batch, one display refresh).  Each sale
# may make three actions, each copied for the journal and the link: a pass
# of 512 held about 1.5 MiB at once during an outage burst.
DRAIN_BATCH = 256
# Committed sales wait with their payload as the intake journaled it: its
# canonical CBOR bytes (~230 for a card sale, a fifth of the decoded dict's
# ~2 KB), up to QUEUE_BYTES counted with each entry's own overhead; past that
# only the seq waits and the payload is read back from the journal when judged
# (decoding its segment from the start: slow, but memory stays bounded if the
# POS outruns the watchdog for a long time).  16 POS at ~4,000 sales/s queue
# ~400 sales (~140 KiB) between two passes (REFRESH_S); an outage burst, whose
# sales each raise alerts, fills the budget (docs/DESIGN.md "The daemon's memory").
QUEUE_BYTES = 512 << 10
# Per queued payload beside its bytes: the bytes object's header (33), the
# (seq, data) tuple (56), the seq (32) and its heap slot (8).
QUEUE_ENTRY_OVERHEAD = 128
# alerts.json and the display are rewritten at most this often (seconds).
SHOW_EVERY_S = 0.5


class SettlementPlugin:
    """start(), stop(), alive(); the inputs on_transaction, on_settlements,
    on_hook_alert; release_floor() and status_summary() for the sync link."""

    def __init__(self, journal, profile, device_id, alerts_file, log, now_ms, clock_trusted,
                 listeners_floor=None, outputs=None, texts=None):
        """`clock_trusted()`: the daemon's clock guard; `listeners_floor()`:
        the intake's highest seq handed to on_transaction with all below it
        (None: the journal's last seq); `outputs`: agent.toml's [outputs];
        `texts`: the display's words in the merchant's locale (daozhang.i18n)."""
        self.log = log
        self.journal = journal
        self.device_id = device_id
        self.profile = profile
        self.now = now_ms
        self.clock_trusted = clock_trusted
        self._intake_floor = listeners_floor
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
        self.outputs = DeviceOutputs({"outputs": outputs or {}}, texts=texts)
        self.alerts_file = alerts_file
        # The sync link (attach()); until attached, published transitions wait
        # in _unpublished: the link raises alerts while it is being built.
        self.link = None
        self._attached = False
        self._unpublished = []
        self.counts = {"settlement_acks": 0, "duplicates": 0, "replays": 0, "invalid": 0,
                       "redelivered": 0}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = None
        # Committed sales not yet judged: a heap of (seq, payload), consumed
        # by this plugin's thread in journal order (never on the POS's reply
        # path).  Before start() (no thread yet) they are judged at once.
        self._incoming = []
        self._incoming_bytes = 0      # what the payloads in _incoming cost (QUEUE_BYTES)
        self._incoming_lock = threading.Lock()
        self._inline = True
        self._show_due = False
        self._last_show = 0.0
        self._unjournaled_obs = rebuild(self)

    def attach(self, link):
        """The sync link this plugin publishes its alert transitions through
        and whose position() raises sync_backlog (None: no sync).  The
        transitions raised before (while the link was being built) go now."""
        with self._lock:
            self.link, self._attached = link, True
            waiting, self._unpublished = self._unpublished, []
            self._publish(waiting)

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
        if self._intake_floor is not None:
            return self._intake_floor()
        return self.journal.ring.next_seq - 1

    # -- plugin face -------------------------------------------------------------

    def start(self):
        with self._lock:
            if not self._attached:       # no sync link: nothing will publish them
                self.attach(None)
            now = self.now()
            for obs in self._unjournaled_obs:
                self._observe(obs, now)
            self._unjournaled_obs = []
            self._feed(("clock", bool(self.clock_trusted()), now), now)
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
                    item = heapq.heappop(self._incoming)
                    if item[1] is not None:
                        self._incoming_bytes -= len(item[1]) + QUEUE_ENTRY_OVERHEAD
                    batch.append(item)
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
            keys = [txn.get("pos_txn_id") for _, txn in batch]
            # Which of the pass's keys the index knows, and its new rows, in a
            # few statements for the whole pass rather than three a sale.
            with self.index.judging([k for k in keys if isinstance(k, str)]):
                for seq, txn in batch:
                    txn["seq"] = seq        # a dict of our own (decoded for this pass)
                    try:
                        # The watchdog tells the sale's watched deadline (for a
                        # new one without asking the index again).
                        outputs, deadline = self.watchdog.judge_transaction(txn, now)
                        actions.extend(self._alert_actions(outputs))
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
        """`batch` (seq order) as (seq, payload dict): the queued bytes
        decoded, and every payload the queue dropped read back from the
        journal, in one pass over the records it spans."""
        missing = [seq for seq, data in batch if data is None]
        found = {}
        if missing:
            wanted = set(missing)
            for rec in self.journal.records(from_seq=missing[0]):
                if rec.seq > missing[-1]:
                    break
                if rec.seq in wanted:
                    found[rec.seq] = rec.payload
        # cbor2's C decoder without cbor.loads' canonical re-encoding check:
        # these are the bytes the intake encoded and journaled itself.
        return [(seq, _cbor2_loads(data) if data is not None else found[seq])
                for seq, data in batch if data is not None or seq in found]

    def tick(self):
        self.drain()
        with self._lock:
            now = self.now()
            trusted = bool(self.clock_trusted())
            if trusted != self.watchdog.clock_trusted:
                self._feed(("clock", trusted, now), now)
            self._check_backlog(now)
            self._feed(("tick", now), now)
            if self.watchdog.last_prune == now:
                self.index.forget_acks(now - self.watchdog.expire_after)
            self._checkpoint(self._safe_cursor())

    def _check_backlog(self, now):
        if self.link is None:
            return
        pos = self.link.position()
        backlog, state = pos["next_seq"] - pos["acked"], pos["state"]
        active = backlog >= BACKLOG_ALERT_RECORDS or (backlog > 0 and state != "online")
        rec = self.machine.alerts.get(("sync_backlog", "device"))
        if active or (rec is not None and rec["state"] in ("pending", "firing")):
            self._observe({"kind": "sync_backlog", "key": "device", "active": active, "at": now,
                           "detail": {"backlog": backlog, "link": state}}, now)

    # -- inputs --------------------------------------------------------------------

    def on_transaction(self, seq, payload, data=None):
        """A committed transaction (the intake's listener): queued, nothing
        more on the POS's reply path; the settlement thread judges it.
        `data`: the payload's canonical CBOR as journaled (the intake has it,
        record.Encoded); encoded here for callers without it (tests, tools)."""
        if data is None:
            data = cbor.dumps(payload)
        cost = len(data) + QUEUE_ENTRY_OVERHEAD
        with self._incoming_lock:
            # Past QUEUE_BYTES waiting, only the seq waits: the payload is
            # read back from the journal when judged.
            if self._incoming_bytes + cost <= QUEUE_BYTES:
                self._incoming_bytes += cost
            else:
                data = None
            heapq.heappush(self._incoming, (seq, data))
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
        return settlement_apply.apply_batch(self, items)

    def on_deposit(self, msg):
        """A verified deposit finding (SPEC 7.10.2): the backend saw this
        terminal's settlement day paid short or not at all.  Raises the
        deposit alert (a redelivery raises the same key: ignored while it fires)."""
        with self._lock:
            now = self.now()
            self._observe(deposit_alert.observation(msg, now), now)
            self._checkpoint(self._safe_cursor())

    def on_hook_alert(self, kind, severity, detail):
        """alert(kind, severity, detail) of every part (agent/assemble.py)."""
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
        actions = self._alert_actions(self.watchdog.handle(event))
        if event[0] == "tick":
            actions.extend(self.machine.tick(now))
        return actions

    def _alert_actions(self, outputs):
        """The alert machine's actions for the watchdog's alert outputs."""
        actions = []
        for tag, out in outputs:
            if tag == "alert":
                actions.extend(self.machine.observe(out))
        return actions

    def _observe(self, obs, now):
        self._emit(self.machine.observe(obs))

    def _emit(self, actions):
        """Journal, log, publish and show alert transitions."""
        if not actions:
            return
        before = {g["kind"]: g["severity"] for g in self.machine.groups()}
        actions = [_plain(a) for a in actions]
        seqs = journal_actions(self.journal, actions, self.log)
        for action, seq in zip(actions, seqs):
            self.log("alert", level="warning" if action["state"] == "firing" else "info",
                     action=action["action"], kind=action["kind"], key=action["key"],
                     severity=action["severity"], seq=seq)
            action["seq"] = seq       # journaled already: the published copy carries its seq
        self._publish(actions)
        self.outputs.notify(actions, before)
        if self._inline:
            self._show()
        else:
            self._show_due = True     # the settlement thread shows it (SHOW_EVERY_S)

    def _publish(self, published):
        if not self._attached:
            self._unpublished.extend(published)
        elif self.link is not None and published:
            self.link.publish_alerts(published)     # batched, many per message

    def _show(self):
        """Display, status file and alerts.json: grouped lines and counts
        from the machine's index (O(kinds)), and at most ALERTS_FILE_LIMIT
        single alerts, so a flood costs the same to show as one alert."""
        self._show_due = False
        self._last_show = time.monotonic()
        now = self.now()
        summary = self.machine.status_summary(now)
        self.outputs.show(summary, self.now())
        write_alerts_file(self.alerts_file, {
            "device": self.device_id, "at": now, "summary": summary,
            "alerts": self.current_alerts(ALERTS_FILE_LIMIT), "alerts_total": len(self.machine.alerts),
            "counts": dict(self.counts), "clock_trusted": self.watchdog.clock_trusted}, self.log)

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
