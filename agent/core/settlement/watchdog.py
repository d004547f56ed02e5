"""The settlement watchdog (docs/SPEC.md §7.5).  Sans-IO.

Events in, outputs out.  Events are tuples, the same ones the daemon
journals (so a reboot replays them):

    ("transaction", txn[, now])       a transaction record (dict with seq);
                                      `now` only dates a flag it raises
    ("settlement", row, now)          a verified settlement ack's row
    ("clock", trusted, now)           a clock event: trusted True/False
    ("tick", now)                     time passes (never journaled)

Outputs are tuples:

    ("check", result)     a check result, journaled with the settlement ack
    ("alert", obs)        an observation for AlertMachine.observe()

Rebuilding after a reboot: feed the journaled events (transactions,
settlement acks, clock events) in journal order to a fresh watchdog and
discard its outputs (the check results it recomputes equal the journaled
ones: the checks depend on the events only, never on `now`); then call
tick(now).  Its first tick re-observes every overdue sale; the alert
machine, restored from its own journaled actions, treats those as no-ops.

State: every transaction, result and watched sale lives in a sale index
passed in (agent/core/settlement/sale_index.py): in memory for tests, MicroPython and
reconcile, a SQLite file in the agent daemon (so its memory stays flat).
A transaction expired by policy is forgotten by the next hourly prune (in
tick), like the journal forgets its record.

Release (journal reclamation): a transaction record may be reclaimed once
its sale is settled, or expired by policy: `expire_after` ms past its
deadline (past its time for voids and reversals), judged on a trusted clock
only.  release_cursor() gives the seq below which every transaction is
released.  Every time (now, deadlines, expire_after) is Unix milliseconds
(SPEC 2).  Portable core.
"""

from daozhang.agent.core.errors import LocalError, ValidationError
from daozhang.agent.core.settlement.sale_index import MemorySaleIndex, since_ms
from daozhang.agent.core.settlement.settlement_checks import DEFAULT_MATCH_WINDOW, SALE_KINDS, SettlementLedger

DEFAULT_EXPIRE_AFTER = 35 * 86400 * 1000  # ms: five weeks
PRUNE_EVERY = 3600 * 1000                 # ms between pruning passes
DUE_PER_TICK = 10000                      # overdue observations a tick emits at most
_ASK = object()                           # judge_transaction: the index knows the deadline

# check name -> (alert kind, key from "txn" or "ref", amount field)
CHECK_ALERTS = {
    "short": ("settlement_short", "txn", "shortfall"),
    "over_fee": ("fee_over_contract", "txn", "fee_excess"),
    "mcc_jump": ("mcc_jump", "txn", "settled_amount"),
    "region_jump": ("region_jump", "txn", "settled_amount"),
    "duplicate_settlement": ("duplicate_settlement", "ref", "settled_amount"),
    "unknown_settlement": ("unknown_settlement", "ref", "settled_amount"),
    "cancelled_settled": ("cancelled_settled", "ref", "settled_amount"),
}


class SettlementWatchdog:
    def __init__(self, profile, calendar, expire_after=DEFAULT_EXPIRE_AFTER,
                 match_window_ms=DEFAULT_MATCH_WINDOW, index=None, due_per_tick=DUE_PER_TICK):
        self.profile = profile
        # Overdue observations one tick emits at most: a board's heap holds
        # a few dozen at once, the daemon's thousands (firmware/terminal.py).
        self.due_per_tick = due_per_tick
        self.calendar = calendar
        self.expire_after = expire_after
        # The sale index holds every transaction, every result and which
        # sales await their money (agent/core/settlement/sale_index.py): in memory by
        # default, on disk in the agent daemon.  Slim: what the index keeps
        # of a transaction is only what matching and checks read.
        self.index = MemorySaleIndex() if index is None else index
        self.ledger = SettlementLedger(profile, calendar, match_window_ms, slim=True,
                                       index=self.index)
        self.currency = profile.get("currency", "CNY")
        self.clock_trusted = True
        self.last_trusted_now = None
        self.last_prune = None

    def handle(self, event):
        name = event[0]
        if name == "transaction":
            return self.transaction_recorded(event[1], event[2] if len(event) > 2 else None)
        if name == "settlement":
            return self.settlement_received(event[1], event[2])
        if name == "clock":
            return self.clock_event(event[1], event[2])
        if name == "tick":
            return self.tick(event[1])
        raise LocalError("unknown watchdog event %r (expected transaction, settlement, "
                         "clock or tick)" % (name,))

    def transaction_recorded(self, txn, now=None):
        return self._recorded(txn, now)[0]

    def judge_transaction(self, txn, now=None):
        """transaction_recorded(), also giving what watched_deadline(its
        pos_txn_id) answers after it: (outputs, deadline or None).  The
        daemon asks that of every sale (one journaled after its deadline is
        judged at once); for a new transaction it is known here, without
        another index lookup."""
        outputs, deadline = self._recorded(txn, now)
        if deadline is _ASK:
            deadline = self.index.watched_deadline(txn.get("pos_txn_id"))
        return outputs, deadline

    def _recorded(self, txn, now):
        """(outputs, the watched deadline after them, or _ASK the index)."""
        try:
            entry, new = self.ledger.record_transaction(txn, watch=True)
        except ValidationError as exc:
            # A journaled sale the checks cannot place (a time the calendar
            # cannot reach, written by an older agent, or a wrong shape): not
            # watched, and flagged, never a crash of the watchdog (SPEC 7.5).
            key = txn.get("pos_txn_id")
            if now is None:
                now = self.last_trusted_now or 0
            obs = self._obs("sale_unjudgeable", key if isinstance(key, str) else
                            "seq %s" % txn.get("seq"), True, now)
            obs["detail"] = {"seq": txn.get("seq"), "field": exc.field, "reason": str(exc)}
            return [("alert", obs)], _ASK
        original = txn.get("original_pos_txn_id")
        outputs = []
        awaits = entry["kind"] in SALE_KINDS and self.ledger.expects_settlement(entry)
        if entry["kind"] in ("void", "reversal") and original \
                and self.index.watched_deadline(original) is not None:
            # A cancelled sale expects no money: it is no longer overdue.
            self.index.unwatch(original)
            # The void's own time stands for "now": transactions carry no clock.
            outputs.append(("alert", self._obs("settlement_overdue", original, False,
                                               entry["time"])))
        elif new:
            # The ledger added it watched if it awaits money (a void that came
            # first made it cancelled: not awaiting); its key was unknown before.
            return outputs, entry["deadline"] if awaits else None
        elif awaits and entry["first"] is None:
            self.index.watch(entry)
        return outputs, _ASK

    def watched_deadline(self, pos_txn_id):
        """The deadline of a sale still awaiting its money, else None."""
        return self.index.watched_deadline(pos_txn_id)

    def settlement_received(self, row, now):
        result, _entry, new = self.ledger.settle(row)
        if not new:
            return []  # the same ack delivered again: nothing new
        outputs = [("check", result)]
        key = result["pos_txn_id"]
        if key is not None and self.index.unwatch(key):
            outputs.append(("alert", self._obs("settlement_overdue", key, False, now)))
        for name in result["checks"]:
            if name not in CHECK_ALERTS:
                continue  # late: the overdue alert told it, and resolves now
            kind, keyed, amount_field = CHECK_ALERTS[name]
            ident = key if keyed == "txn" else result["acquirer_ref"]
            obs = self._obs(kind, ident, True, now)
            obs["amount"] = result[amount_field]
            obs["detail"] = {"acquirer_ref": result["acquirer_ref"], "pos_txn_id": key,
                             "mcc": result["mcc"], "region": result["region"]}
            outputs.append(("alert", obs))
        return outputs

    def clock_event(self, trusted, now):
        self.clock_trusted = bool(trusted)
        if trusted:
            self.last_trusted_now = now
        return [("alert", self._obs("clock_untrusted", "clock", not trusted, now))]

    def tick(self, now):
        """Overdue sales, observed once each, in deadline order, at most
        due_per_tick a tick (the rest on the next: outputs stay bounded).
        Nothing at all while the clock is untrusted: a wrong clock invents
        no overdue."""
        if not self.clock_trusted:
            return []
        self.last_trusted_now = now
        outputs = []
        if self.last_prune is None or now - self.last_prune >= PRUNE_EVERY:
            outputs.extend(self.prune(now))
        for deadline, _, key, amount in self.index.due(now, self.due_per_tick):
            self.index.mark_seen(key)
            obs = self._obs("settlement_overdue", key, True, now)
            obs["since"] = deadline
            obs["escalate_at"] = self.calendar.one_business_day_later_ms(deadline)
            obs["amount"] = amount
            obs["detail"] = {"pos_txn_id": key, "deadline": deadline}
            outputs.append(("alert", obs))
        return outputs

    def _obs(self, kind, key, active, now):
        return {"kind": kind, "key": key, "active": active, "at": now,
                "currency": self.currency}

    # -- journal reclamation ----------------------------------------------------

    def is_released(self, pos_txn_id):
        entry = self.index.get(pos_txn_id)
        if entry is None:
            return True  # pruned: expired by policy
        if entry["first"] is not None:
            return True
        if self.last_trusted_now is None:
            return False
        return self.last_trusted_now > since_ms(entry) + self.expire_after

    def release_cursor(self):
        """The lowest seq of a transaction not yet settled or expired (None
        if every known transaction is released): every transaction record
        with a lower seq may be reclaimed."""
        return self.index.release_floor(self.last_trusted_now, self.expire_after)

    def prune(self, now):
        """Forget transactions expired by policy (settled or not) and old
        unknown settlements, so the index stays bounded on a long-running
        terminal.  Run from tick at most once an hour, on a trusted clock.
        A sale still unsettled stops being watched: its overdue alert is
        cleared (the backend keeps the record; reconcile still reports it)."""
        self.last_prune = now
        outputs = []
        gone = self.index.expired(now - self.expire_after)
        for key in gone:
            if self.index.unwatch(key):
                outputs.append(("alert", self._obs("settlement_overdue", key, False, now)))
        self.ledger.forget(gone, now - self.expire_after)
        return outputs

    def summary(self, as_of):
        return self.ledger.summary(as_of)

    def state(self):
        """The rebuilt-by-replay state, plain and comparable (walks the
        whole index: for tests and diagnostics)."""
        txns = {}
        for key in self.index.keys():
            e = self.index.get(key)
            txns[key] = [e["seq"], e["deadline"], e["cancelled"], list(e["settlements"]),
                         list(e["checks"])]
        return {"clock_trusted": self.clock_trusted, "transactions": txns,
                "unsettled": self.index.unsettled_keys(),
                "unknown": [r["acquirer_ref"] for r in self.index.unknown_results()]}
