"""Where the settlement ledger and the watchdog keep their per-sale state.

The ledger (agent/core/settlement/settlement_checks.py) and the watchdog
(agent/core/settlement/watchdog.py) never hold their transactions themselves: they ask
an index object passed in.  Two implementations share one face:

- `MemorySaleIndex` (here): dicts and lists, for the reconcile tool (a
  whole journal and CSV in one go), the core's unit tests and MicroPython;
- `SqliteSaleIndex` (agent/sale_index_sqlite.py): the agent daemon's, a
  SQLite file beside the journal, so the daemon's memory does not grow
  with the unsettled backlog (docs/adr/0004-on-disk-sale-index.md).

An entry is a dict: txn (the slim tuple of settlement_checks.SLIM_FIELDS,
or the whole transaction dict), pos_txn_id, seq, kind, time, amount, mode,
deadline, cancelled, settlements (acquirer refs, arrival order), first
(the check result of the first settlement, or None), checks.  An entry
handed out may be a copy: whoever changes one calls save(entry).

The face:

    get(key) -> entry | None          add(entry[, watched])          save(entry)
    by_rrn_of(terminal_id, rrn) -> [entry]    arrival order
    by_auth_of(auth_code, amount) -> [entry]  arrival order
    result(ref) -> result | None      add_result(result, matched)
    unknown_results() -> [result]     arrival order
    cancellation(original) -> key | None      set_cancellation(original, key)
    keys() -> pos_txn_ids, arrival order      count()
    forget(keys, unknown_before)      drop entries, their results and
                                      cancellations; unknown results
                                      settled before `unknown_before`
  the watchdog's:
    add(entry, True)                  add(entry), then watch(entry): one
                                      write where the index has writes
    watch(entry)                      a sale now awaiting its money
    unwatch(key) -> bool              it was watched (settled, cancelled, expired)
    watched_deadline(key) -> ms | None
    due(now, limit) -> [(deadline, seq, key, amount)]   watched, deadline
                                      before now, not yet seen; ascending
    mark_seen(key)                    its overdue was observed
    unsettled_keys() -> sorted keys
    expired(before) -> keys           since (deadline, else time) < before,
                                      arrival order
    release_floor(trusted_now, expire_after) -> lowest seq of an entry
                                      neither settled nor expired, or None

Portable core: no I/O.
"""

_NO_SEQ = 0


def since_ms(entry):
    """What expiry counts from: the deadline, or the time (voids, reversals)."""
    return entry["deadline"] if entry["deadline"] is not None else entry["time"]


def _field(entry, name, position):
    txn = entry["txn"]
    if isinstance(txn, tuple):
        return txn[position]
    return txn.get(name)


class MemorySaleIndex:
    """Everything in dicts: O(transactions) memory, no I/O."""

    # positions in settlement_checks.SLIM_FIELDS (kept in step by a test)
    _TERMINAL, _RRN, _AUTH, _AMOUNT, _ORIGINAL = 0, 1, 2, 3, 5

    def __init__(self):
        self.entries = {}        # pos_txn_id -> entry
        self.order = []          # pos_txn_ids in arrival order
        self.by_rrn = {}         # (terminal_id, rrn) -> [entry]
        self.by_auth = {}        # (auth_code, amount) -> [entry]
        self.by_order = {}       # order number (pos_txn_id, a refund's original) -> [entry]
        self.by_trace = {}       # (terminal_id, batch_no, trace_no) -> [entry]
        self.results = {}        # acquirer_ref -> check result
        self.unknown = []        # results of settlements matching nothing
        self.cancellations = {}  # original pos_txn_id -> void/reversal pos_txn_id
        self.unsettled = {}      # pos_txn_id -> entry, sales awaiting money
        self.overdue_seen = set()

    # -- entries -------------------------------------------------------------

    def get(self, key):
        return self.entries.get(key)

    def add(self, entry, watched=False):
        key = entry["pos_txn_id"]
        self.entries[key] = entry
        self.order.append(key)
        self.add_match_keys(entry)
        if watched:
            self.watch(entry)

    def add_match_keys(self, entry):
        """Only what matching reads (the backend's router, many devices)."""
        rrn = _field(entry, "rrn", self._RRN)
        auth = _field(entry, "auth_code", self._AUTH)
        if rrn:
            self.by_rrn.setdefault((_field(entry, "terminal_id", self._TERMINAL), rrn),
                                   []).append(entry)
        if auth:
            self.by_auth.setdefault((auth, _field(entry, "amount", self._AMOUNT)), []).append(entry)
        txn = entry["txn"]
        if isinstance(txn, dict) and txn.get("trace_no") and txn.get("batch_no"):
            # Whole transactions only (reconcile, the backend): the slim tuple of
            # the terminal's watchdog does not carry them.
            self.by_trace.setdefault((txn.get("terminal_id"), txn["batch_no"], txn["trace_no"]),
                                     []).append(entry)
        # A QR payment's file row names the merchant order number, which is the
        # sale's pos_txn_id; its refund rows reuse it (the refund's original).
        for order in (entry.get("pos_txn_id"), _field(entry, "original_pos_txn_id",
                                                       self._ORIGINAL)):
            if order:
                self.by_order.setdefault(order, []).append(entry)

    def save(self, entry):
        pass  # entries here are the stored dicts themselves

    def by_rrn_of(self, terminal_id, rrn):
        return self.by_rrn.get((terminal_id, rrn), ())

    def by_auth_of(self, auth_code, amount):
        return self.by_auth.get((auth_code, amount), ())

    def by_order_of(self, order):
        return self.by_order.get(order, ())

    def by_trace_of(self, terminal_id, batch_no, trace_no):
        return self.by_trace.get((terminal_id, batch_no, trace_no), ())

    def keys(self):
        return list(self.order)

    def count(self):
        return len(self.entries)

    # -- results -------------------------------------------------------------

    def result(self, ref):
        return self.results.get(ref)

    def add_result(self, result, matched):
        self.results[result["acquirer_ref"]] = result
        if not matched:
            self.unknown.append(result)

    def unknown_results(self):
        return list(self.unknown)

    def cancellation(self, original):
        return self.cancellations.get(original)

    def set_cancellation(self, original, key):
        self.cancellations[original] = key

    def forget(self, keys, unknown_before=None):
        keys = set(keys)
        for key in keys:
            entry = self.entries.pop(key)
            for ref in entry["settlements"]:
                self.results.pop(ref, None)
            original = _field(entry, "original_pos_txn_id", self._ORIGINAL)
            if self.cancellations.get(original) == key:
                del self.cancellations[original]
            self.unsettled.pop(key, None)
            self.overdue_seen.discard(key)
        if keys:
            # Only when something goes: rebuilding copies every list (hourly prune).
            self.order = [k for k in self.order if k not in keys]
            for index in (self.by_rrn, self.by_auth, self.by_order, self.by_trace):
                for ident in list(index):
                    kept = [e for e in index[ident] if e["pos_txn_id"] not in keys]
                    if kept:
                        index[ident] = kept
                    else:
                        del index[ident]
        if unknown_before is not None:
            kept = []
            for result in self.unknown:
                if result["settled_at"] < unknown_before:
                    self.results.pop(result["acquirer_ref"], None)
                else:
                    kept.append(result)
            self.unknown = kept

    # -- the watchdog's ------------------------------------------------------

    def watch(self, entry):
        self.unsettled[entry["pos_txn_id"]] = entry

    def unwatch(self, key):
        self.overdue_seen.discard(key)
        return self.unsettled.pop(key, None) is not None

    def watched_deadline(self, key):
        entry = self.unsettled.get(key)
        return None if entry is None else entry["deadline"]

    def due(self, now, limit):
        due = []
        for key, entry in self.unsettled.items():
            if key not in self.overdue_seen and now > entry["deadline"]:
                due.append((entry["deadline"], entry["seq"] or _NO_SEQ, key, entry["amount"]))
        due.sort()
        return due[:limit]

    def mark_seen(self, key):
        self.overdue_seen.add(key)

    def unsettled_keys(self):
        return sorted(self.unsettled)

    def expired(self, before):
        return [key for key in self.order if since_ms(self.entries[key]) < before]

    def release_floor(self, trusted_now, expire_after):
        low = None
        for key in self.order:
            entry = self.entries[key]
            seq = entry["seq"]
            if seq is None or entry["first"] is not None:
                continue
            if trusted_now is not None and trusted_now > since_ms(entry) + expire_after:
                continue
            if low is None or seq < low:
                low = seq
        return low
