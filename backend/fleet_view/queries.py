"""What the fleet view shows, read from the backend's store (SQLite or PostgreSQL).

    q = FleetQueries(store, silent_after_ms=300000, overdue_after_ms=2 * 86400000)
    q.overview(now_ms, statuses)     # the fleet page, also GET /api/overview
    q.terminal(device_id, now_ms, statuses)

`statuses` is the StatusBoard's {device: (state, at_ms, counters)} (the
retained status messages, fleet_view/status_board.py).  Definitions:

- online / offline: the device's last status message says so ("online",
  or the will "offline"); a device never heard from is "unknown".
- silent: no status message and no acked record for more than
  silent_after (its last ack from the acks table, its last status time).
- backlog: the device's own count (records journaled but not acked), from
  the counters in its status message; else, unknown.
- unsettled sale: a transaction record of kind "sale" with no settlement
  row matched to its (device, seq); overdue when received longer ago than
  overdue_after.  Per acquirer: the sale's `acquirer` field ("unknown"
  without one); per merchant: its `merchant_id`; region: digits 4-7 of the
  15-digit merchant number (as the settlement checks read it).
- discrepancies per acquirer: settlement rows that matched no receipt
  (`unknown`, `unrouted`) and matched rows settling less than the sale.

Every query is one SQL statement that both databases run as written.
"""

import json

ALERT_CLEARED = ("clear", "cleared", "resolved", "withdrawn", "expired", "inactive")
TOP = 10


def region_of(merchant_id):
    if isinstance(merchant_id, str) and len(merchant_id) == 15 and merchant_id.isdigit():
        return merchant_id[3:7]
    return "unknown"


class FleetQueries:
    def __init__(self, store, silent_after_ms=300000, overdue_after_ms=2 * 86400000):
        self.store = store
        self.silent_after_ms = int(silent_after_ms)
        self.overdue_after_ms = int(overdue_after_ms)

    def _all(self, sql, params=()):
        with self.store._lock, self.store.db.read() as tx:
            return tx.all(sql, params)

    # -- the fleet -----------------------------------------------------------------

    def overview(self, now_ms, statuses):
        stats = self.store.stats()
        terminals, last_seen = self._terminals(now_ms, statuses)
        backlogs = sorted(((c.get("backlog", 0), d) for d, (_, _, c) in statuses.items()
                           if isinstance(c, dict) and isinstance(c.get("backlog"), int)),
                          reverse=True)
        return {
            "generated_at": now_ms,
            "stats": stats,
            "terminals": terminals,
            "backlog": {"total": sum(b for b, _ in backlogs), "reporting": len(backlogs),
                        "top": [{"device": d, "backlog": b} for b, d in backlogs[:TOP] if b > 0]},
            "oldest_unsettled": self._oldest_unsettled(),
            "alerts_firing": self._alerts_firing(),
            "overdue": self._overdue(now_ms),
            "discrepancies": self._discrepancies(),
            "findings_by_kind": dict(self._all(
                "SELECT kind, COUNT(*) FROM findings GROUP BY kind ORDER BY kind")),
            "silent_devices": sorted(d for d, seen in last_seen.items()
                                     if seen is not None and now_ms - seen > self.silent_after_ms)[:50],
        }

    def _terminals(self, now_ms, statuses):
        devices = [row[0] for row in self._all("SELECT device_id FROM devices")]
        acked = dict(self._all("SELECT device_id, at FROM acks"))
        out = {"total": len(devices), "online": 0, "offline": 0, "unknown": 0, "silent": 0,
               "silent_after_s": self.silent_after_ms / 1000.0}
        last_seen = {}
        for device in devices:
            state, at, _ = statuses.get(device, (None, None, None))
            out[state if state in ("online", "offline") else "unknown"] += 1
            seen = max([t for t in (at, acked.get(device)) if t is not None], default=None)
            last_seen[device] = seen
            if seen is not None and now_ms - seen > self.silent_after_ms:
                out["silent"] += 1
        return out, last_seen

    def _unsettled_where(self):
        return ("FROM records r LEFT JOIN settlements s ON s.device_id = r.device_id AND s.seq = r.seq "
                "WHERE r.type = 1 AND s.id IS NULL AND r.payload->>'kind' = 'sale'")

    def _oldest_unsettled(self):
        rows = self._all("SELECT r.device_id, r.seq, r.received_at, r.payload->>'time', "
                         "CAST(r.payload->>'amount' AS BIGINT) %s ORDER BY r.received_at, "
                         "r.device_id, r.seq LIMIT 1" % self._unsettled_where())
        if not rows:
            return None
        device, seq, received, when, amount = rows[0]
        return {"device": device, "seq": int(seq), "received_at": int(received), "time": when,
                "amount": int(amount or 0)}

    def _overdue(self, now_ms):
        cutoff = now_ms - self.overdue_after_ms
        where = self._unsettled_where() + " AND r.received_at < %s"
        rows = self._all("SELECT COALESCE(r.payload->>'acquirer', 'unknown'), r.payload->>'merchant_id', "
                         "COUNT(*), SUM(CAST(r.payload->>'amount' AS BIGINT)) %s GROUP BY 1, 2"
                         % where, (cutoff,))
        by_acquirer, by_merchant, total, count = {}, {}, 0, 0
        for acquirer, merchant, n, amount in rows:
            amount = int(amount or 0)
            total += amount
            count += int(n)
            by_acquirer[acquirer] = by_acquirer.get(acquirer, 0) + amount
            merchant = merchant or "unknown"
            by_merchant[merchant] = by_merchant.get(merchant, 0) + amount
        top = sorted(by_merchant.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
        return {"after_s": self.overdue_after_ms / 1000.0, "total": total, "count": count,
                "by_acquirer": dict(sorted(by_acquirer.items())),
                "by_merchant": [{"merchant": m, "amount": a} for m, a in top]}

    def _discrepancies(self):
        out = {}
        for acquirer, status, n in self._all(
                "SELECT COALESCE(s.\"row\"->>'acquirer', 'unknown'), s.status, COUNT(*) FROM settlements s "
                "WHERE s.status IN ('unknown', 'unrouted') GROUP BY 1, 2"):
            out.setdefault(acquirer, {"unmatched": 0, "short": 0})["unmatched"] += int(n)
        for acquirer, n in self._all(
                "SELECT COALESCE(r.payload->>'acquirer', 'unknown'), COUNT(*) FROM settlements s "
                "JOIN records r ON r.device_id = s.device_id AND r.seq = s.seq "
                "WHERE CAST(s.\"row\"->>'amount' AS BIGINT) < CAST(r.payload->>'amount' AS BIGINT) "
                "GROUP BY 1"):
            out.setdefault(acquirer, {"unmatched": 0, "short": 0})["short"] += int(n)
        return dict(sorted(out.items()))

    def _alerts_firing(self, device_id=None):
        """Latest state per (device, kind); firing unless cleared."""
        where, params = "", ()
        if device_id is not None:
            where, params = "WHERE a.device_id = %s", (device_id,)
        rows = self._all("SELECT a.device_id, a.kind, a.state, a.severity, a.at FROM alerts a %s "
                         "ORDER BY a.id" % where, params)
        latest = {}
        for device, kind, state, severity, at in rows:
            latest[(device, kind)] = (state, severity, at)
        regions = dict(self._all("SELECT device_id, MIN(payload->>'merchant_id') FROM records "
                                 "WHERE type = 1 GROUP BY device_id")) if latest else {}
        by_kind, by_region, firing = {}, {}, []
        for (device, kind), (state, severity, at) in sorted(latest.items()):
            if state in ALERT_CLEARED:
                continue
            by_kind[kind] = by_kind.get(kind, 0) + 1
            region = region_of(regions.get(device))
            by_region[region] = by_region.get(region, 0) + 1
            firing.append({"device": device, "kind": kind, "state": state, "severity": severity,
                           "at": at})
        return {"total": len(firing), "by_kind": by_kind, "by_region": by_region,
                "firing": firing[:50]}

    # -- one terminal ----------------------------------------------------------------

    def terminal(self, device_id, now_ms, statuses):
        device = self.store.device(device_id)
        if device is None:
            return None
        state, at, counters = statuses.get(device_id, (None, None, None))
        ack = self.store.last_ack(device_id)
        ack = None if ack is None else {"to": int(ack[0]) + 1, "head": ack[1].hex()}
        checkpoint = self._all("SELECT seq, received_at, payload FROM records WHERE device_id = %s "
                               "AND type = 8 ORDER BY seq DESC LIMIT 1", (device_id,))
        last_checkpoint = None
        if checkpoint:
            seq, received, payload = checkpoint[0]
            payload = json.loads(payload) if isinstance(payload, str) else payload
            last_checkpoint = {"seq": int(seq), "received_at": int(received),
                               "alg": payload.get("alg"), "kid": payload.get("kid"),
                               "signature_verified": payload.get("alg") == 1}
        recon = self._all(
            "SELECT COALESCE(s.status, 'unsettled'), COUNT(*), SUM(CAST(r.payload->>'amount' AS BIGINT)) "
            "FROM records r LEFT JOIN settlements s ON s.device_id = r.device_id AND s.seq = r.seq "
            "WHERE r.device_id = %s AND r.type = 1 GROUP BY 1 ORDER BY 1", (device_id,))
        return {
            "device": device_id, "state": state or "unknown", "status_at": at,
            "counters": counters or {}, "contiguous_seq": device["contiguous_seq"],
            "last_ack": ack, "last_checkpoint": last_checkpoint,
            "alerts": self._alerts_firing(device_id)["firing"],
            "findings": [{"seq": f["seq"], "kind": f["kind"], "detail": f["detail"]}
                         for f in self.store.findings(device_id)][:50],
            "reconciliation": [{"status": s, "count": int(n), "amount": int(a or 0)} for s, n, a in recon],
        }
