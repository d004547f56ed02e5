"""The grouped view of a device's alerts (`daozhang backend alerts --group`):
what the terminal's display shows, per terminal, from the transitions the
backend stored.

The backend stores every alert transition (from the alerts topic and from
the journaled type 3 records); an alert's current state is its newest
transition, by journal seq when it has one.  Grouped: per device and kind,
the alerts pending or firing now, with their count, total amount per
currency, oldest `since` and worst severity; one line each, never one line
per sale.  One pass over the rows: O(rows) time, O(alerts) memory.
"""

from daozhang.agent.core.settlement.alerts import KIND_ORDER, SEVERITY_RANK, format_money

ACTIVE = ("pending", "firing")


def current_alerts(rows):
    """(device, kind, key) -> the newest alert record among `rows` (store rows
    with a payload {"alert": record, ...}); journal seq decides when both have one."""
    latest = {}
    for row in rows:
        payload = row.get("payload")
        alert = payload.get("alert") if isinstance(payload, dict) else None
        if not isinstance(alert, dict) or "key" not in alert:
            continue
        ident = (row["device_id"], str(alert.get("kind")), str(alert.get("key")))
        order = (row["seq"] if row["seq"] is not None else -1, row["id"])
        known = latest.get(ident)
        if known is None or order >= known[0]:
            latest[ident] = (order, alert)
    return {ident: alert for ident, (_, alert) in latest.items()}


def groups(rows):
    """[{"device", "kind", "severity", "pending", "firing", "amounts", "oldest"}]
    for every device and kind with active alerts, by device then worst first."""
    out = {}
    for (device, kind, _), alert in current_alerts(rows).items():
        state = alert.get("state")
        if state not in ACTIVE:
            continue
        g = out.get((device, kind))
        if g is None:
            g = out[(device, kind)] = {"device": device, "kind": kind, "severity": "info",
                                       "pending": 0, "firing": 0, "amounts": {}, "oldest": None}
        g[state] += 1
        severity = alert.get("severity")
        if SEVERITY_RANK.get(severity, 9) < SEVERITY_RANK.get(g["severity"], 9):
            g["severity"] = severity
        amount = alert.get("amount")
        if isinstance(amount, int):
            currency = alert.get("currency") or "CNY"
            g["amounts"][currency] = g["amounts"].get(currency, 0) + amount
        since = alert.get("since")
        if isinstance(since, int) and (g["oldest"] is None or since < g["oldest"]):
            g["oldest"] = since
    return sorted(out.values(), key=lambda g: (
        g["device"], SEVERITY_RANK.get(g["severity"], 9),
        KIND_ORDER.index(g["kind"]) if g["kind"] in KIND_ORDER else 99, g["kind"]))


def group_line(g, now_ms):
    """"pos-1  critical  settlement_overdue  100000 firing, ¥1,250,000.00, oldest 5d"."""
    from daozhang.agent.core.settlement.alerts import format_age
    text = "%-16s %-8s %-20s %d firing" % (g["device"], g["severity"], g["kind"], g["firing"])
    if g["pending"]:
        text += ", %d pending" % g["pending"]
    for currency in sorted(g["amounts"]):
        text += ", " + format_money(g["amounts"][currency], currency)
    if g["oldest"] is not None:
        text += ", oldest " + format_age(now_ms - g["oldest"])
    return text
