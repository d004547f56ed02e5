"""What a microcontroller terminal does with a sale, a UART frame and a
tick: the firmware's rules, over the portable core, with no I/O of its own.

    t = Terminal(journal, profile, calendar, outputs)
    t.take_sale(txn)        -> {"seq", "pos_txn_id", "receipt"}  (the payment app's call)
    t.uart_data(bytes)      -> response bytes (SPEC 5.1 frames from a separate POS)
    t.tick(now_ms)          -> settlement watchdog + alert machine; drives the outputs

A sale is validated (agent/core/intake/txn.py: no full card number is ever
stored), journaled in one commit (signed checkpoint, or a flagged signer
outage), given its receipt code (SPEC 5.5), then handed to the settlement
watchdog.  Alert actions are journaled too (type 3), at most
ALERTS_PER_COMMIT a commit so a burst never exceeds a segment.
"""

from daozhang.agent.core.errors import JournalFull, StorageError, ValidationError
from daozhang.agent.core.intake import intake_frames, receipt, txn
from daozhang.agent.core.journal import record
from daozhang.agent.core.settlement.alerts import AlertMachine
from daozhang.agent.core.settlement.watchdog import SettlementWatchdog

ALERTS_PER_COMMIT = 16
# A tick observes at most this many newly overdue sales and visits at most
# this many due alerts: each observation holds a few hundred bytes and makes
# up to three actions, all on the heap until the tick's journal commits, so
# an outage's first tick (every sale overdue at once, or a day's sales
# escalating at the same deadline) must come in slices, not in one list of
# thousands.  The rest come at the next ticks (TICK_EVERY_MS apart).
TICK_ALERTS = 32
CLEARED_STATES = ("clear", "resolved", "withdrawn", "expired", "inactive")


class Refused(Exception):
    """A sale not taken; nothing was written.  .code as in SPEC 5.3."""

    def __init__(self, code, message, field=None):
        super().__init__(message)
        self.code = code
        self.field = field


class Outputs:
    """LED (any alert firing), buzzer (one beep per newly critical alert)
    and a one-line display, through machine.Pin-like objects (.value(v))
    and a display with .show(text); any of them may be None."""

    def __init__(self, led=None, buzzer=None, display=None):
        self.led, self.buzzer, self.display = led, buzzer, display
        self.shown = None
        self._critical = 0
        self.beeps = 0

    def update(self, summary):
        if self.led is not None:
            self.led.value(1 if summary["firing"] else 0)
        beep = summary["critical"] > self._critical
        self._critical = summary["critical"]
        if beep:
            self.beeps += 1
        if self.buzzer is not None:
            self.buzzer.value(1 if beep else 0)
        if summary["display"] != self.shown:
            self.shown = summary["display"]
            if self.display is not None:
                self.display.show(self.shown)


class Terminal:
    """`alert_sink(actions)`, if given, also gets every journaled alert
    action (the sync link sends them up on the `alerts` topic).
    `alert_files` (firmware/flash_records.py's DirFiles on the board): the
    alert machine's records on flash (firmware/alert_store_flash.py, wiped
    and rebuilt here from the journal's alert records: derived data);
    without it they are in RAM and start empty."""

    def __init__(self, journal, profile=None, calendar=None, outputs=None, alert_sink=None, index=None,
                 alert_files=None):
        self.journal = journal
        self.alert_sink = alert_sink
        self.dev = journal.ring.geo.device_id
        currency = (profile or {}).get("currency", "CNY")
        self.watchdog = SettlementWatchdog(profile, calendar, index=index, due_per_tick=TICK_ALERTS) \
            if profile and calendar else None
        # A sale index on flash (firmware/sale_index_flash.py) outlives a reset:
        # it catches up with the journal here and is checkpointed each tick.
        self.index = index if self.watchdog is not None and hasattr(index, "checkpoint") else None
        self.replayed = None
        if self.index is not None:
            from daozhang.firmware.index_replay import catch_up
            self.replayed = catch_up(self.watchdog, journal)
        store = None
        if alert_files is not None:
            from daozhang.firmware.alert_store_flash import FlashAlertStore
            store = FlashAlertStore(alert_files)
        self.alerts = AlertMachine(currency, store=store)
        self.restored = None
        if store is not None:
            # Rebuilt from the journal's alert records: what fired before the
            # reset fires again at once, and the first ticks' re-observation
            # of every overdue sale journals nothing twice.
            from daozhang.firmware.index_replay import restore_alerts
            self.restored = restore_alerts(self.alerts, journal)
        self.outputs = outputs or Outputs()
        self.decoder = intake_frames.FrameDecoder()
        self.taken = 0

    # -- sales --------------------------------------------------------------

    def take_sale(self, obj):
        try:
            payload = txn.validate(obj)
        except ValidationError as exc:
            raise Refused(exc.code, str(exc), exc.field)
        try:
            appended = self.journal.append(record.TYPE_TRANSACTION, payload)
        except JournalFull as exc:
            # Shown on the board at once; not journaled (there is no room).
            now = self.journal.clock.now().wall_ms
            self.alerts.observe({"kind": "journal_full", "key": "journal", "active": True, "at": now,
                                 "currency": self.alerts.currency})
            self.outputs.update(self.alerts.status_summary())
            raise Refused("journal_full", "the terminal's journal is full: nothing was written")
        except StorageError as exc:
            raise Refused("storage_error", "the terminal could not write its journal: " + str(exc))
        self.taken += 1
        code = receipt.encode(receipt.from_appended(self.dev, appended))
        if self.watchdog is not None:
            # With its seq, so the release floor keeps the sale until it settles or expires.
            self._apply(self.watchdog.handle(("transaction", dict(payload, seq=appended.seq))))
        return {"seq": appended.seq, "pos_txn_id": payload["pos_txn_id"], "receipt": code}

    def uart_data(self, data):
        """Bytes from the POS's UART in; response frames out (SPEC 5.1-5.3)."""
        out = []
        try:
            self.decoder.receive_data(data)
            while True:
                message = self.decoder.next_event()
                if message == intake_frames.NEED_DATA or message == intake_frames.CLOSED:
                    break
                out.append(self._answer(message))
        except intake_frames.FrameError as exc:
            out.append(intake_frames.error_response(exc.request_id, exc.code, str(exc)))
            self.decoder = intake_frames.FrameDecoder()     # a UART has no "close": start over
        return b"".join(out)

    def _answer(self, message):
        try:
            request = intake_frames.parse_request(message)
        except intake_frames.FrameError as exc:
            return intake_frames.error_response(exc.request_id, exc.code, str(exc))
        if request.op == "ping":
            return intake_frames.ok_response(request.id, {"pong": True})
        try:
            return intake_frames.ok_response(request.id, self.take_sale(request.txn))
        except Refused as exc:
            return intake_frames.error_response(request.id, exc.code, str(exc), exc.field)

    # -- time ---------------------------------------------------------------

    def settlement(self, row, now_ms):
        """A settlement ack reached the board (from sync): check it, resolve."""
        if self.watchdog is not None:
            self._apply(self.watchdog.handle(("settlement", row, now_ms)))

    def link_alert(self, kind, severity, detail):
        """The sync rules' alerts (sync_stalled, journal_near_full, security:
        a rejected down message) on the board's outputs and in the journal,
        as the settlement watchdog's are.  A kind the alert machine does not
        know is dropped: the link's own log already names it."""
        if kind not in self.alerts.kinds:
            return
        state = detail.get("state", "firing") if isinstance(detail, dict) else "firing"
        now = self.journal.clock.now().wall_ms
        self.apply_outputs([("alert", {"kind": kind, "key": kind, "active": state not in CLEARED_STATES,
                                       "at": now, "currency": self.alerts.currency,
                                       "detail": detail if isinstance(detail, dict) else {"detail": str(detail)}})])

    def deposit(self, msg):
        """A deposit finding the sync rules verified (SPEC 7.10.2: the
        backend's bank statement shows a settlement day's payout missing or
        short): deposit_missing / deposit_short on the outputs and in the
        journal, as on the Linux agent.  A redelivery raises the same key,
        which the alert machine ignores while it fires."""
        from daozhang.agent.core.sync import deposit_alert
        self.apply_outputs([("alert", deposit_alert.observation(msg, self.journal.clock.now().wall_ms))])

    def apply_outputs(self, outputs):
        """Watchdog outputs from elsewhere (firmware/settlement_acks.py): alerts
        observed, journaled, shown."""
        self._apply(outputs)
        self.outputs.update(self.alerts.status_summary())

    def release_floor(self):
        """The lowest seq the journal must keep for the watchdog (None: all
        may go once acked).  Without a watchdog nothing is watched."""
        return None if self.watchdog is None else self.watchdog.release_cursor()

    def tick(self, now_ms):
        actions = []
        if self.watchdog is not None:
            actions += self._apply(self.watchdog.handle(("tick", now_ms)), journal=False)
        actions += self.alerts.tick(now_ms, TICK_ALERTS)
        self._journal_alerts(actions)
        self.outputs.update(self.alerts.status_summary())
        if self.index is not None and self.index.dirty:
            # Every record so far is in the index (a sale goes in right after its commit).
            self.index.checkpoint(self.journal.ring.next_seq - 1)
        return actions

    def _apply(self, outputs, journal=True):
        actions = []
        for tag, item in outputs:
            if tag == "alert":
                actions.extend(self.alerts.observe(item))
        if journal:
            self._journal_alerts(actions)
        return actions

    def _journal_alerts(self, actions):
        for i in range(0, len(actions), ALERTS_PER_COMMIT):
            self.journal.append_many([(record.TYPE_ALERT, a) for a in actions[i:i + ALERTS_PER_COMMIT]])
        if actions and self.alert_sink is not None:
            self.alert_sink(actions)
