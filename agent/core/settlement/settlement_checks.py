"""Settlement checks: each acquirer settlement held against its transaction
and the merchant profile (docs/SPEC.md §7.3 and §7.4).

The same code serves the watchdog on the terminal (one event at a time) and
the reconcile tool (a whole journal and a whole CSV): both feed a
`SettlementLedger`; `reconcile()` is the whole-batch entry point.

Inputs are plain dicts.  A transaction is the journal's transaction JSON plus
`seq`; its `time` is the RFC 3339 string as journaled (Unix milliseconds as
an int are accepted too).  A settlement row has the CSV columns with ints
already parsed: amount, fee, settled_amount (signed minor units), txn_time
and settled_at (Unix milliseconds, SPEC 2; txn_time may be None).  Every
time in and out of this module is Unix milliseconds.  Portable core.
"""

from daozhang.agent.core.business_calendar import (
    days_from_civil, is_ascii_digits, parse_mode, parse_rfc3339_ms)
from daozhang.agent.core.errors import LocalError, ValidationError
from daozhang.agent.core.settlement.fees import contracted_fee
from daozhang.agent.core.settlement.sale_index import MemorySaleIndex

# Every check name, in the order results list them.  The first eight are the
# issue's; `cancelled_settled` is ours: money settled for a voided or
# reversed sale (or for the void/reversal record itself), where none should.
CHECKS = ("not_arrived", "late", "short", "over_fee", "mcc_jump", "region_jump",
          "duplicate_settlement", "unknown_settlement", "cancelled_settled")
# The reconcile summary's counts, under exactly these names.
COUNT_NAMES = ("ok", "not_arrived", "late", "short", "over_fee", "mcc_jump", "region_jump",
               "unknown_settlement", "duplicate_settlement")
TOTAL_NAMES = ("gross", "expected_net", "settled", "missing")

SALE_KINDS = ("sale", "preauth_completion")
CANCEL_KINDS = ("void", "reversal")
KINDS = SALE_KINDS + ("refund",) + CANCEL_KINDS
DEFAULT_MATCH_WINDOW = 900000  # ms between POS time and acquirer time (15 min)

# A slim ledger (the agent's watchdog, which may hold every unsettled sale of
# a large journal) keeps of each transaction only what matching and checks
# read, as a tuple in this order, not the whole dict: about a tenth of the
# memory.  The reconcile tool keeps whole transactions (its report shows them).
SLIM_FIELDS = ("terminal_id", "rrn", "auth_code", "amount", "card_type", "original_pos_txn_id")
# Values repeated across a terminal's transactions, shared rather than copied.
_SHARED_FIELDS = ("terminal_id", "card_type")
_NO_REFS = ()


def txn_field(entry, name):
    """A field of an entry's transaction, slim (a tuple) or whole (a dict)."""
    txn = entry["txn"]
    if isinstance(txn, tuple):
        return txn[SLIM_FIELDS.index(name)]
    return txn.get(name)


# The times the business calendar (and the platform's time zone data) can
# place: a sale outside them is refused by the ledger, never a crash deep in
# a deadline computation (a journal written by an older agent may hold
# 9999-12-31T23:59:59+14:00 or 0000-01-01T00:00:00+14:00).
SALE_TIME_MIN_MS = 0                                         # 1970-01-01
SALE_TIME_MAX_MS = days_from_civil(9000, 1, 1) * 86400000    # 9000-01-01


def txn_time_ms(txn):
    """A transaction's time in Unix milliseconds (RFC 3339 text or an int);
    ValidationError("time") outside SALE_TIME_MIN_MS..SALE_TIME_MAX_MS."""
    t = txn.get("time")
    if isinstance(t, int) and not isinstance(t, bool):
        ms = t
    else:
        ms = parse_rfc3339_ms(t, "time")
    if not SALE_TIME_MIN_MS <= ms < SALE_TIME_MAX_MS:
        raise ValidationError("time", "%r is outside the range the settlement calendar can "
                                      "judge (1970-01-01 to 9000-01-01)" % (t,), "time_out_of_range")
    return ms


def _sorted_checks(names):
    return [c for c in CHECKS if c in names]


def _code4(value, merchant_id, start):
    """A 4-digit code as a string, from the column or else from the
    15-digit merchant number (digits 4-7 region, 8-11 MCC, 1-indexed)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return "%04d" % value
    if isinstance(value, str) and value:
        return value
    if isinstance(merchant_id, str) and len(merchant_id) == 15 and is_ascii_digits(merchant_id):
        return merchant_id[start:start + 4]
    return None


def _need_int(row, name, optional=False):
    v = row.get(name)
    if v is None and optional:
        return None
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValidationError(name, "expected an integer, got %r" % (v,))
    return v


class Matcher:
    """Settlement row -> transaction: terminal_id + rrn first; else
    auth_code + |amount| within a time window, closest in time, then
    earliest arrival; else terminal + batch + trace number; else the
    merchant order number (order_id: the sale's
    pos_txn_id, or a refund's original), same direction.  Only a transaction of the same money direction
    matches (a refund row never matches the sale it refunds).  The
    candidates come from the sale index (agent/core/settlement/sale_index.py)."""

    def __init__(self, window_ms=DEFAULT_MATCH_WINDOW, index=None):
        self.index = MemorySaleIndex() if index is None else index
        self.window = window_ms

    def add(self, entry):
        """Make an entry matchable (a matcher of its own, as the backend's)."""
        self.index.add_match_keys(entry)

    def match(self, row):
        refund = row.get("kind") == "refund" or (row.get("settled_amount", 0) < 0)
        if row.get("rrn"):
            for entry in self.index.by_rrn_of(row.get("terminal_id"), row["rrn"]):
                if (entry["kind"] == "refund") == refund:
                    return entry
        if row.get("auth_code") and row.get("txn_time") is not None:
            best = None
            for entry in self.index.by_auth_of(row["auth_code"], abs(row["amount"])):
                if (entry["kind"] == "refund") != refund:
                    continue
                gap = abs(entry["time"] - row["txn_time"])
                if gap <= self.window and (best is None or gap < best[0]):
                    best = (gap, entry)
            if best is not None:
                return best[1]
        by_trace = getattr(self.index, "by_trace_of", None)
        if row.get("trace_no") and row.get("batch_no") and by_trace is not None:
            # Rule 3 (SPEC 7.4): terminal + batch + trace (凭证号), same direction.
            for entry in by_trace(row.get("terminal_id"), row["batch_no"], row["trace_no"]):
                if (entry["kind"] == "refund") == refund:
                    return entry
        order = row.get("order_id")
        by_order = getattr(self.index, "by_order_of", None)
        if order and by_order is not None:
            # Rule 4 (SPEC 7.4): the merchant order number (QR payments: WeChat,
            # Alipay), same direction; the amount is what the checks then judge.
            for entry in by_order(order):
                if (entry["kind"] == "refund") == refund:
                    return entry
        return None


class SettlementLedger:
    """Transactions, the settlements matched to them, and their checks,
    kept in a sale index (default: in memory)."""

    def __init__(self, profile, calendar, match_window_ms=DEFAULT_MATCH_WINDOW, slim=False,
                 index=None):
        self.profile = profile
        self.calendar = calendar
        self.slim = slim
        self._shared = {}       # slim: one copy of each repeated value (_SHARED_FIELDS)
        self.index = MemorySaleIndex() if index is None else index
        self.matcher = Matcher(match_window_ms, self.index)

    # The memory index's own structures, for the reconcile tool and tests.
    @property
    def entries(self):
        return self.index.entries

    @property
    def order(self):
        return self.index.order

    @property
    def results(self):
        return self.index.results

    @property
    def unknown(self):
        return self.index.unknown

    # -- transactions ------------------------------------------------------

    def add_transaction(self, txn):
        """Record a transaction; the same one twice is a no-op."""
        return self.record_transaction(txn)[0]

    def record_transaction(self, txn, watch=False):
        """add_transaction(), also telling whether the transaction is new:
        (entry, new).  `watch` (the watchdog's): a new sale that expects its
        money goes into the index already watched (sale_index add(entry,
        True)), one index write where there would be two."""
        key = txn.get("pos_txn_id")
        if not isinstance(key, str) or not key:
            raise ValidationError("pos_txn_id", "expected a non-empty string, got %r" % (key,))
        kind = txn.get("kind")
        if kind not in KINDS:
            raise ValidationError("kind", "expected one of %s, got %r" % ("|".join(KINDS), kind))
        stored = self._slim(txn) if self.slim else txn
        known = self.index.get(key)
        if known is not None:
            if known["txn"] != stored or (self.slim and known["seq"] != txn.get("seq")):
                raise LocalError("transaction %s recorded twice with different content" % key)
            return known, False
        amount = _need_int(txn, "amount")
        when = txn_time_ms(txn)
        mode = txn.get("settlement") or self.profile["settlement"]["mode"]
        parse_mode(mode)
        if self.slim:
            mode = self._share(mode)
            kind = self._share(kind)
        # Slim: settlements/checks start as one shared empty tuple and become
        # lists when something arrives (most entries never see one twice).
        empty = _NO_REFS if self.slim else []
        entry = {"txn": stored, "pos_txn_id": key, "seq": txn.get("seq"), "kind": kind,
                 "time": when, "amount": amount, "mode": mode, "deadline": None,
                 "cancelled": False, "settlements": empty, "first": None,
                 "checks": empty if self.slim else []}
        if kind in CANCEL_KINDS:
            original = txn.get("original_pos_txn_id")
            if original:
                self.index.set_cancellation(original, key)
                cancelled = self.index.get(original)
                if cancelled is not None:
                    cancelled["cancelled"] = True
                    self.index.save(cancelled)
        else:
            entry["deadline"] = self.calendar.deadline_ms(
                when, mode, self.profile["settlement"]["d0_within_minutes"])
            entry["cancelled"] = self.index.cancellation(key) is not None
        if watch and self.expects_settlement(entry) and kind in SALE_KINDS:
            self.index.add(entry, True)
        else:
            self.index.add(entry)
        return entry, True

    def _share(self, value):
        if not isinstance(value, str):
            return value
        shared = self._shared.get(value)
        if shared is None:
            if len(self._shared) < 256:        # low-cardinality values only
                self._shared[value] = value
            return value
        return shared

    def _slim(self, txn):
        out = []
        for name in SLIM_FIELDS:
            value = txn.get(name)
            out.append(self._share(value) if name in _SHARED_FIELDS else value)
        return tuple(out)

    def expects_settlement(self, entry):
        return entry["kind"] not in CANCEL_KINDS and not entry["cancelled"]

    # -- settlements -------------------------------------------------------

    def add_settlement(self, row):
        """Match and check one settlement row; returns its check result.

        The same acquirer_ref delivered again returns the first result and
        changes nothing (an ack re-delivered is not a duplicate settlement).
        """
        return self.settle(row)[0]

    def settle(self, row):
        """add_settlement(), also telling the matched entry and whether the
        row is new: (result, entry or None, new)."""
        ref = row.get("acquirer_ref")
        if not isinstance(ref, str) or not ref:
            raise ValidationError("acquirer_ref", "expected a non-empty string, got %r" % (ref,))
        known = self.index.result(ref)
        if known is not None:
            return known, None, False
        for name in ("amount", "fee", "settled_amount", "settled_at"):
            _need_int(row, name)
        for name in ("merchant_id", "terminal_id", "rrn", "auth_code", "kind"):
            if row.get(name) is not None and not isinstance(row[name], str):
                raise ValidationError(name, "expected a string, got %r" % (row[name],))
        _need_int(row, "txn_time", optional=True)
        entry = self.matcher.match(row)
        result = self._check(entry, row)
        self.index.add_result(result, entry is not None)
        if entry is not None:
            # Appended in place once the entry owns a list: copying it per row made
            # k rows matching one sale cost O(k^2) (issue 12: 136k duplicates).
            if type(entry["settlements"]) is list:
                entry["settlements"].append(ref)
            else:
                entry["settlements"] = list(entry["settlements"]) + [ref]
            if entry["first"] is None:
                entry["first"] = result
            checks = list(entry["checks"])
            for name in result["checks"]:
                if name not in checks:
                    checks.append(name)
            entry["checks"] = _sorted_checks(checks)
            self.index.save(entry)
        return result, entry, True

    def _check(self, entry, row):
        p = self.profile
        tolerance = p["fees"]["tolerance"]
        result = {"acquirer_ref": row["acquirer_ref"], "pos_txn_id": None, "seq": None,
                  "checks": [], "settled_at": row["settled_at"],
                  "settled_amount": row["settled_amount"], "reported_fee": row["fee"],
                  "contracted_fee": None, "deadline": None, "expected_settled": None,
                  "shortfall": 0, "fee_excess": 0,
                  "mcc": _code4(row.get("mcc"), row.get("merchant_id"), 7),
                  "region": _code4(row.get("region"), row.get("merchant_id"), 3)}
        if entry is None:
            result["checks"] = ["unknown_settlement"]
            return result
        result["pos_txn_id"] = entry["pos_txn_id"]
        result["seq"] = entry["seq"]
        result["deadline"] = entry["deadline"]
        if not self.expects_settlement(entry):
            result["checks"] = ["cancelled_settled"]
            return result
        if entry["settlements"]:
            result["checks"] = ["duplicate_settlement"]
            return result
        checks = []
        if row["settled_at"] > entry["deadline"]:
            checks.append("late")
        sign = -1 if entry["kind"] == "refund" else 1
        expected_settled = sign * entry["amount"] - row["fee"]
        result["expected_settled"] = expected_settled
        result["shortfall"] = expected_settled - row["settled_amount"]
        if result["shortfall"] > tolerance:
            checks.append("short")
        fee = self.contracted(entry, row["settled_at"])
        result["contracted_fee"] = fee
        if fee is not None:
            result["fee_excess"] = row["fee"] - fee
            if result["fee_excess"] > tolerance:
                checks.append("over_fee")
        if result["mcc"] is not None and result["mcc"] != p["mcc"]:
            checks.append("mcc_jump")
        if result["region"] is not None and result["region"] != p["region"]:
            checks.append("region_jump")
        result["checks"] = checks
        return result

    def contracted(self, entry, settled_at=None):
        """Contracted fee of an entry; a refund's is 0 (fees are on sales).

        The D0 surcharge is owed only when the sale asked for D0 and settled
        within the D0 window (or has not settled yet: expected D0)."""
        if entry["kind"] == "refund":
            return 0
        d0 = entry["mode"] == "D0" and (settled_at is None or settled_at <= entry["deadline"])
        return contracted_fee(entry["amount"], txn_field(entry, "card_type"),
                              self.profile["fees"], d0)

    def forget(self, keys, unknown_before=None):
        """Drop transactions (and their settlements) from the index: the
        watchdog's pruning of expired ones.  Unknown settlements settled
        before `unknown_before` go too."""
        keys = list(keys)
        if not keys and unknown_before is None:
            return
        self.index.forget(keys, unknown_before)

    # -- statuses ----------------------------------------------------------

    def status(self, pos_txn_id, as_of, entry=None):
        entry = self.index.get(pos_txn_id) if entry is None else entry
        checks = list(entry["checks"])
        first = entry["first"]
        expects = self.expects_settlement(entry)
        if expects and first is None and as_of > entry["deadline"]:
            checks = _sorted_checks(checks + ["not_arrived"])
        if checks:
            state = "problem"
        elif not expects:
            state = "cancelled"
        elif first is None:
            state = "pending"
        else:
            state = "ok"
        return {"pos_txn_id": pos_txn_id, "seq": entry["seq"], "kind": entry["kind"],
                "amount": entry["amount"], "time": entry["time"], "mode": entry["mode"],
                "deadline": entry["deadline"], "status": state, "checks": checks,
                "settled_at": first["settled_at"] if first else None,
                "settled_amount": first["settled_amount"] if first else None,
                "acquirer_refs": list(entry["settlements"])}

    def summary(self, as_of):
        """Per-transaction statuses, counts and money totals at `as_of`."""
        counts = {}
        for name in COUNT_NAMES:
            counts[name] = 0
        other = {"pending": 0, "cancelled": 0, "cancelled_settled": 0}
        totals = {}
        for name in TOTAL_NAMES:
            totals[name] = 0
        statuses = []
        for key in self.index.keys():
            entry = self.index.get(key)
            st = self.status(key, as_of, entry)
            statuses.append(st)
            if st["status"] in ("ok", "pending", "cancelled"):
                if st["status"] == "ok":
                    counts["ok"] += 1
                else:
                    other[st["status"]] += 1
            for name in st["checks"]:
                if name in counts:
                    counts[name] += 1
                else:
                    other[name] += 1
            if not self.expects_settlement(entry):
                continue
            sign = -1 if entry["kind"] == "refund" else 1
            fee = self.contracted(entry, st["settled_at"]) or 0
            net = sign * entry["amount"] - fee
            totals["gross"] += sign * entry["amount"]
            totals["expected_net"] += net
            if entry["first"] is not None:
                totals["settled"] += entry["first"]["settled_amount"]
                if "short" in entry["first"]["checks"]:
                    totals["missing"] += entry["first"]["shortfall"]
            elif "not_arrived" in st["checks"]:
                totals["missing"] += net
        unknown = self.index.unknown_results()
        counts["unknown_settlement"] = len(unknown)
        return {"as_of": as_of, "counts": counts, "other_counts": other, "totals": totals,
                "transactions": statuses, "unknown_settlements": unknown}


def reconcile(profile, calendar, transactions, settlements, as_of,
              match_window_ms=DEFAULT_MATCH_WINDOW):
    """Whole batch: every transaction (in seq order), then every settlement
    (in settled_at, acquirer_ref order, so "the second" settlement is
    well defined) -> the summary of SettlementLedger.summary()."""
    ledger = SettlementLedger(profile, calendar, match_window_ms)
    for txn in sorted(transactions, key=lambda t: (t.get("seq") or 0)):
        ledger.add_transaction(txn)
    for row in sorted(settlements, key=lambda r: (r["settled_at"], r["acquirer_ref"])):
        ledger.add_settlement(row)
    return ledger.summary(as_of)
