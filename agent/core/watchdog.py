"""The settlement watchdog (docs/SPEC.md §7.5).  Sans-IO.

Events in, outputs out.  Events are tuples, the same ones the daemon
journals (so a reboot replays them):

    ("transaction", txn)              a transaction record (dict with seq)
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

Memory: a transaction expired by policy is forgotten by the next hourly
prune (in tick), like the journal forgets its record.

Release (journal reclamation): a transaction record may be reclaimed once
its sale is settled, or expired by policy: `expire_after` ms past its
deadline (past its time for voids and reversals), judged on a trusted clock
only.  release_cursor() gives the seq below which every transaction is
released.  Every time (now, deadlines, expire_after) is Unix milliseconds
(SPEC 2).  Portable core.
"""

from daozhang.agent.core.errors import LocalError
from daozhang.agent.core.settlement_checks import (
    DEFAULT_MATCH_WINDOW, SALE_KINDS, SettlementLedger)

DEFAULT_EXPIRE_AFTER = 35 * 86400 * 1000  # ms: five weeks
PRUNE_EVERY = 3600 * 1000                 # ms between pruning passes

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
                 match_window_ms=DEFAULT_MATCH_WINDOW):
        self.profile = profile
        self.calendar = calendar
        self.expire_after = expire_after
        # Slim: the watchdog may hold every unsettled sale of a large journal.
        self.ledger = SettlementLedger(profile, calendar, match_window_ms, slim=True)
        self.currency = profile.get("currency", "CNY")
        self.clock_trusted = True
        self.unsettled = {}        # pos_txn_id -> entry, sales awaiting money
        self.overdue_seen = set()  # bookkeeping only: overdue already observed
        self.last_trusted_now = None
        self.last_prune = None

    def handle(self, event):
        name = event[0]
        if name == "transaction":
            return self.transaction_recorded(event[1])
        if name == "settlement":
            return self.settlement_received(event[1], event[2])
        if name == "clock":
            return self.clock_event(event[1], event[2])
        if name == "tick":
            return self.tick(event[1])
        raise LocalError("unknown watchdog event %r (expected transaction, settlement, "
                         "clock or tick)" % (name,))

    def transaction_recorded(self, txn):
        entry = self.ledger.add_transaction(txn)
        original = txn.get("original_pos_txn_id")
        outputs = []
        if entry["kind"] in ("void", "reversal") and original in self.unsettled:
            # A cancelled sale expects no money: it is no longer overdue.
            del self.unsettled[original]
            self.overdue_seen.discard(original)
            # The void's own time stands for "now": transactions carry no clock.
            outputs.append(("alert", self._obs("settlement_overdue", original, False,
                                               entry["time"])))
        elif entry["kind"] in SALE_KINDS and self.ledger.expects_settlement(entry):
            if entry["first"] is None:
                self.unsettled[entry["pos_txn_id"]] = entry
        return outputs

    def settlement_received(self, row, now):
        before = len(self.ledger.results)
        result = self.ledger.add_settlement(row)
        if len(self.ledger.results) == before:
            return []  # the same ack delivered again: nothing new
        outputs = [("check", result)]
        key = result["pos_txn_id"]
        if key is not None and key in self.unsettled:
            del self.unsettled[key]
            self.overdue_seen.discard(key)
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
        """Overdue sales, observed once each, in deadline order.  Nothing at
        all while the clock is untrusted: a wrong clock invents no overdue."""
        if not self.clock_trusted:
            return []
        self.last_trusted_now = now
        outputs = []
        if self.last_prune is None or now - self.last_prune >= PRUNE_EVERY:
            outputs.extend(self.prune(now))
        due = []
        for key, entry in self.unsettled.items():
            if key not in self.overdue_seen and now > entry["deadline"]:
                due.append((entry["deadline"], entry["seq"] or 0, key))
        for deadline, _, key in sorted(due):
            entry = self.unsettled[key]
            self.overdue_seen.add(key)
            obs = self._obs("settlement_overdue", key, True, now)
            obs["since"] = deadline
            obs["escalate_at"] = self.calendar.one_business_day_later_ms(deadline)
            obs["amount"] = entry["amount"]
            obs["detail"] = {"pos_txn_id": key, "deadline": deadline}
            outputs.append(("alert", obs))
        return outputs

    def _obs(self, kind, key, active, now):
        return {"kind": kind, "key": key, "active": active, "at": now,
                "currency": self.currency}

    # -- journal reclamation ----------------------------------------------------

    def is_released(self, pos_txn_id):
        entry = self.ledger.entries.get(pos_txn_id)
        if entry is None:
            return True  # pruned: expired by policy
        if entry["first"] is not None:
            return True
        if self.last_trusted_now is None:
            return False
        since = entry["deadline"] if entry["deadline"] is not None else entry["time"]
        return self.last_trusted_now > since + self.expire_after

    def release_cursor(self):
        """The lowest seq of a transaction not yet settled or expired (None
        if every known transaction is released): every transaction record
        with a lower seq may be reclaimed."""
        low = None
        for key in self.ledger.order:
            entry = self.ledger.entries[key]
            if entry["seq"] is not None and not self.is_released(key):
                if low is None or entry["seq"] < low:
                    low = entry["seq"]
        return low

    def prune(self, now):
        """Forget transactions expired by policy (settled or not) and old
        unknown settlements, so memory stays bounded on a long-running
        terminal.  Run from tick at most once an hour, on a trusted clock.
        A sale still unsettled stops being watched: its overdue alert is
        cleared (the backend keeps the record; reconcile still reports it)."""
        self.last_prune = now
        gone = []
        outputs = []
        for key in self.ledger.order:
            entry = self.ledger.entries[key]
            since = entry["deadline"] if entry["deadline"] is not None else entry["time"]
            if now > since + self.expire_after:
                gone.append(key)
        for key in gone:
            if self.unsettled.pop(key, None) is not None:
                outputs.append(("alert", self._obs("settlement_overdue", key, False, now)))
            self.overdue_seen.discard(key)
        self.ledger.forget(gone, now - self.expire_after)
        return outputs

    def summary(self, as_of):
        return self.ledger.summary(as_of)

    def state(self):
        """The rebuilt-by-replay state, plain and comparable."""
        txns = {}
        for key in self.ledger.order:
            e = self.ledger.entries[key]
            txns[key] = [e["seq"], e["deadline"], e["cancelled"], list(e["settlements"]),
                         list(e["checks"])]
        return {"clock_trusted": self.clock_trusted, "transactions": txns,
                "unsettled": sorted(self.unsettled),
                "unknown": [r["acquirer_ref"] for r in self.ledger.unknown]}
