"""The reconcile report as one self-contained HTML file.

Inline CSS and inline SVG only: no script, no font, no link to anything, so
it opens offline from a USB stick.  Every value that came from the journal
or the settlement file goes through `_e` (html.escape), so a CSV field such
as `<script>` shows as text.  Input: the summary of host_tools/reconcile/run.py.
"""

from html import escape

from daozhang.agent.core.alerts import format_money
from daozhang.agent.core.settlement_checks import COUNT_NAMES
from daozhang.host_tools.reconcile.report_payouts import payout_section

HOUR = 3600 * 1000
DAY = 24 * HOUR
# Settlement delay buckets (sale to first settlement): label, upper bound (ms).
DELAY_BUCKETS = (("< 1 h", HOUR), ("1-6 h", 6 * HOUR), ("6-24 h", DAY), ("1-2 d", 2 * DAY),
                 ("2-3 d", 3 * DAY), ("3-5 d", 5 * DAY), ("5-7 d", 7 * DAY), ("> 7 d", None))
MAX_DAYS = 62
MAX_ROWS = 2000          # per table: a browser stays usable; --json has every one
COUNT_LABELS = {"ok": "settled right", "not_arrived": "never arrived", "late": "late",
                "short": "short", "over_fee": "fee over contract", "mcc_jump": "other MCC",
                "region_jump": "other region", "unknown_settlement": "unknown settlements",
                "duplicate_settlement": "duplicate settlements",
                "cancelled_settled": "cancelled but settled", "pending": "pending",
                "cancelled": "cancelled"}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans CJK SC",sans-serif;
margin:0;color:#1d2330;background:#f5f6f8}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
.sub{color:#5b6475}
.verdict{padding:12px 16px;border-radius:8px;margin:16px 0;font-weight:600}
.verdict.ok{background:#e3f5e8;color:#17652d}.verdict.bad{background:#fde8e8;color:#8c1c1c}
.tamper{background:#8c1c1c;color:#fff;padding:14px 18px;border-radius:8px;margin:16px 0}
.tamper ul{margin:6px 0 0;padding-left:20px;font-weight:400}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.card{background:#fff;border-radius:8px;padding:10px 14px;border-left:5px solid #c9ced8}
.card .n{display:block;font-size:26px;font-weight:700}
.card.zero .n{color:#8a93a3}.card.good{border-color:#2f9e55}.card.warn{border-color:#d9822b}
.card.bad{border-color:#c53030}
.money{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:10px}
.money div{background:#fff;border-radius:8px;padding:10px 14px}
.money .v{display:block;font-size:20px;font-weight:700;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;width:100%;background:#fff;border-radius:8px;overflow:hidden}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e6e8ec;vertical-align:top}
th{background:#eceef2;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.tag{display:inline-block;padding:1px 7px;border-radius:10px;font-size:12px;margin:1px 3px 1px 0;
background:#fde8e8;color:#8c1c1c;white-space:nowrap}
.why{color:#5b6475;font-size:13px}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.chart{background:#fff;border-radius:8px;padding:12px}
.chart h3{margin:0 0 6px;font-size:14px}
svg text{font:11px system-ui,sans-serif;fill:#3b4250}
code{font-size:12px}
@media (max-width:800px){.charts{grid-template-columns:1fr}}
@media print{body{background:#fff}}
"""


def _e(value):
    return escape("" if value is None else str(value), quote=True)


def _duration(ms):
    if ms is None:
        return ""
    minutes = ms // 60000
    if minutes < 60:
        return "%d min" % minutes
    hours = minutes // 60
    if hours < 48:
        return "%d h %d min" % (hours, minutes % 60) if minutes % 60 else "%d h" % hours
    return "%d d %d h" % (hours // 24, hours % 24) if hours % 24 else "%d d" % (hours // 24)


def _when(text):
    """'2027-01-04T10:00:00+08:00' -> '2027-01-04 10:00:00' (the zone is in the header)."""
    return "" if text is None else text[:10] + " " + text[11:19]


def explain(txn, summary):
    """One line per failed check: which, and by how much."""
    cur = summary["currency"]
    m = summary["merchant"]
    out = []
    for check in txn["checks"]:
        if check == "not_arrived":
            why = "due %s; nothing by %s (overdue %s)" % (
                _when(txn["deadline"]), _when(summary["as_of"]),
                _duration(summary["as_of_ms"] - txn["deadline_ms"]))
        elif check == "late":
            why = "by %s (due %s, settled %s)" % (_duration(txn["late_by_ms"]),
                                                  _when(txn["deadline"]), _when(txn["settled_at"]))
        elif check == "short":
            why = "by %s (settled %s, expected %s after the stated fee)" % (
                format_money(txn["shortfall"], cur), format_money(txn["settled_amount"], cur),
                format_money(txn["expected_settled"], cur))
        elif check == "over_fee":
            why = "fee %s, contract %s (+%s)" % (
                format_money(txn["reported_fee"], cur), format_money(txn["contracted_fee"], cur),
                format_money(txn["fee_excess"], cur))
        elif check == "mcc_jump":
            why = "settled under MCC %s, contract %s" % (txn["mcc"], m["mcc"])
        elif check == "region_jump":
            why = "settled under region %s, contract %s" % (txn["region"], m["region"])
        elif check == "duplicate_settlement":
            why = "settled %d times: %s" % (len(txn["acquirer_refs"]),
                                            ", ".join(txn["acquirer_refs"]))
        elif check == "cancelled_settled":
            what = ("a %s record" % txn["kind"] if txn["kind"] in ("void", "reversal")
                    else "voided or reversed")
            why = "%s, so no money was due; settled as %s" % (what, ", ".join(txn["acquirer_refs"]))
        else:
            why = ""
        out.append((check, why))
    return out


def _count_cards(summary):
    cells = []
    counts = dict(summary["counts"])
    extra = summary["other_counts"]
    names = list(COUNT_NAMES) + ["cancelled_settled", "pending", "cancelled"]
    for name in names:
        n = counts[name] if name in counts else extra.get(name, 0)
        if name == "ok":
            cls = "good"
        elif name in ("pending", "cancelled"):
            cls = ""
        else:
            cls = "bad" if n else ""
        cells.append('<div class="card %s%s" data-count="%s"><span class="n">%d</span>'
                     '<span class="label">%s</span> <code>%s</code></div>'
                     % (cls, " zero" if not n else "", name, n, _e(COUNT_LABELS[name]), name))
    return '<div class="cards" id="counts">%s</div>' % "".join(cells)


def _money_cards(summary):
    labels = (("gross", "gross sales"), ("expected_net", "expected net (after contracted fees)"),
              ("settled", "settled"), ("missing", "missing"))
    return '<div class="money" id="totals">%s</div>' % "".join(
        '<div data-total="%s"><span class="v">%s</span>%s</div>'
        % (name, _e(summary["totals_text"][name]), _e(label)) for name, label in labels)


def _problem_rows(summary):
    cur = summary["currency"]
    rows = []
    problems = [t for t in summary["transactions"] if t["status"] == "problem"]
    for t in problems[:MAX_ROWS]:
        whys = "".join('<div><span class="tag">%s</span><span class="why">%s</span></div>'
                       % (_e(check), _e(why)) for check, why in explain(t, summary))
        rows.append('<tr data-seq="%s"><td>%s</td><td><code>%s</code><br><span class="why">'
                    '%s, seq %s</span></td><td class="num">%s</td><td><code>%s</code></td>'
                    '<td>%s</td></tr>'
                    % (_e(t["seq"]), _e(_when(t["time"])), _e(t["pos_txn_id"]), _e(t["kind"]),
                       _e(t["seq"]), _e(format_money(t["amount"], cur)), _e(t["card"]), whys))
    if not rows:
        return '<p id="problems">No problem transactions.</p>'
    return ('<table id="problems"><tr><th>time</th><th>transaction</th><th>amount</th>'
            '<th>card</th><th>what failed, by how much</th></tr>%s</table>%s'
            % ("".join(rows), _more(len(problems))))


def _more(total):
    if total <= MAX_ROWS:
        return ""
    return '<p class="sub">... and %d more (the --json output lists every one).</p>' % (
        total - MAX_ROWS)


def _unknown_rows(summary):
    cur = summary["currency"]
    if not summary["unknown_settlements"]:
        return ""
    rows = "".join(
        '<tr><td>%s</td><td><code>%s</code></td><td>%s</td><td class="num">%s</td>'
        '<td><code>%s</code></td><td>rrn %s, auth %s, terminal %s</td></tr>'
        % (_e(_when(u["settled_at"])), _e(u["acquirer_ref"]), _e(u["line"]),
           _e(format_money(u["settled_amount"], cur)), _e(u["card"]), _e(u["rrn"]),
           _e(u["auth_code"]), _e(u["terminal_id"]))
        for u in summary["unknown_settlements"][:MAX_ROWS])
    return ('<h2>Settlements matching no sale in the journal</h2><table id="unknown"><tr>'
            '<th>settled</th><th>acquirer ref</th><th>file line</th><th>settled amount</th>'
            '<th>card</th><th>identifiers</th></tr>%s</table>%s'
            % (rows, _more(len(summary["unknown_settlements"]))))


def _bars(values, labels, series_colors, legend, money=None):
    """A grouped bar chart as inline SVG: values[i] is a tuple per group."""
    width, height, bottom, top = 520, 230, 40, 24
    left = 96 if money else 40      # room for the y-axis labels
    groups = max(1, len(values))
    per = len(series_colors)
    peak = max([v for group in values for v in group] + [1])
    if money is None:
        peak += peak % 2        # counts: an even peak keeps the middle gridline whole
    slot = (width - left - 8) / groups
    bar = max(2.0, min(28.0, slot * 0.8 / per))
    parts = ['<svg viewBox="0 0 %d %d" width="100%%" role="img" xmlns="http://www.w3.org/2000/svg">'
             % (width, height)]
    base = height - bottom
    for frac in (0, 0.5, 1):
        y = base - frac * (base - top)
        label = money(int(peak * frac)) if money else "%d" % round(peak * frac)
        parts.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e1e4ea"/>'
                     '<text x="%d" y="%.1f" text-anchor="end">%s</text>'
                     % (left, width - 4, y, y, left - 4, y + 4, _e(label)))
    for i, group in enumerate(values):
        x0 = left + i * slot + (slot - bar * per) / 2
        for j, v in enumerate(group):
            h = (base - top) * max(v, 0) / peak
            parts.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s">'
                         '<title>%s: %s</title></rect>'
                         % (x0 + j * bar, base - h, bar - 1, h, series_colors[j], _e(labels[i]),
                            _e(money(v) if money else v)))
        step = max(1, groups // 12)
        if i % step == 0:
            parts.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                         % (left + i * slot + slot / 2, base + 14, _e(labels[i])))
    for j, (name, color) in enumerate(zip(legend, series_colors)):
        parts.append('<rect x="%d" y="4" width="10" height="10" fill="%s"/><text x="%d" y="13">'
                     '%s</text>' % (left + j * 130, color, left + j * 130 + 14, _e(name)))
    parts.append("</svg>")
    return "".join(parts)


def delay_histogram(summary):
    """(labels, [(on time, late)]) of the delay from sale to first settlement."""
    counts = [[0, 0] for _ in DELAY_BUCKETS]
    for t in summary["transactions"]:
        if t["delay_ms"] is None:
            continue
        for i, (_label, upper) in enumerate(DELAY_BUCKETS):
            if upper is None or t["delay_ms"] < upper:
                counts[i][1 if t["late_by_ms"] else 0] += 1
                break
    return [b[0] for b in DELAY_BUCKETS], [tuple(c) for c in counts]


def daily_money(summary):
    """(dates, [(gross, settled)]) per local sale date, the last MAX_DAYS dates."""
    days = {}
    for t in summary["transactions"]:
        if not t["expects_money"]:
            continue
        sign = -1 if t["kind"] == "refund" else 1
        day = days.setdefault(t["time"][:10], [0, 0])
        day[0] += sign * t["amount"]
        day[1] += t["settled_amount"] or 0
    dates = sorted(days)[-MAX_DAYS:]
    return dates, [tuple(days[d]) for d in dates]


def render_report(summary):
    cur = summary["currency"]
    m, j, s = summary["merchant"], summary["journal"], summary["settlement_file"]
    title = "Settlement reconciliation: %s" % (m.get("name") or m.get("merchant_id"))
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
           '<meta name="viewport" content="width=device-width,initial-scale=1">'
           '<title>%s</title><style>%s</style></head><body><main>' % (_e(title), CSS)]
    out.append('<h1>%s</h1><div class="sub">merchant %s · terminal %s · MCC %s · region %s · '
               'times in %s · as of %s</div>'
               % (_e(title), _e(m["merchant_id"]), _e(m["terminal_id"]), _e(m["mcc"]),
                  _e(m["region"]), _e(m["timezone"]), _e(_when(summary["as_of"]))))
    if not j["ok"]:
        bad = [f for f in j["findings"] if not f["informational"]]
        out.append('<div class="tamper" id="tamper"><strong>This journal FAILED verification '
                   '(%d finding%s).</strong> It may have been altered. The figures below count '
                   'only the records that remain; %d transaction%s left out.<ul>%s</ul></div>'
                   % (len(bad), "" if len(bad) == 1 else "s", len(j["excluded"]),
                      " was" if len(j["excluded"]) == 1 else "s were",
                      "".join("<li>%s at seq %s: %s</li>" % (_e(f["kind"]), _e(f["seq"]),
                                                             _e(f["message"])) for f in bad[:20])))
    verdict = ("All sales settled right; journal intact." if summary["ok"] else
               "Not all in order: %s." % "; ".join(summary["verdict"]))
    out.append('<div class="verdict %s" id="verdict">%s</div>'
               % ("ok" if summary["ok"] else "bad", _e(verdict)))
    out.append('<div class="sub">journal %s: device %s, %d transactions (seq %s..%s), %s · '
               'settlement file %s (%s): %d rows, %d bad, %d repeated, %d with a card number '
               'masked</div>'
               % (_e(j["path"]), _e(j["device_id"]), j["transactions"], _e(j["first_seq"]),
                  _e(j["last_seq"]), "intact" if j["ok"] else "NOT intact", _e(s["path"]),
                  _e(s.get("format")), s["rows"], s.get("bad_count", len(s["bad_rows"])),
                  s["repeated"], s.get("card_masked", 0)))
    out.append("<h2>Summary</h2>" + _count_cards(summary))
    out.append("<h2>Money</h2>" + _money_cards(summary))
    out.append("<h2>Problem transactions</h2>" + _problem_rows(summary))
    out.append(_unknown_rows(summary))
    out.append(payout_section(summary))
    if s["bad_rows"]:
        out.append('<h2>Unreadable settlement rows</h2><table id="bad-rows"><tr><th>line</th>'
                   '<th>why</th></tr>%s</table>' % "".join(
                       '<tr><td class="num">%s</td><td>%s</td></tr>' % (_e(b["line"]), _e(b["reason"]))
                       for b in s["bad_rows"][:MAX_ROWS]) + _more(len(s["bad_rows"])))
    if j["excluded"]:
        out.append('<h2>Journal transactions left out</h2><table id="excluded"><tr><th>seq</th>'
                   '<th>transaction</th><th>why</th></tr>%s</table>' % "".join(
                       '<tr><td class="num">%s</td><td><code>%s</code></td><td>%s</td></tr>'
                       % (_e(x["seq"]), _e(x["pos_txn_id"]), _e(x["reason"]))
                       for x in j["excluded"][:MAX_ROWS]) + _more(len(j["excluded"])))
    labels, hist = delay_histogram(summary)
    dates, daily = daily_money(summary)
    money = lambda v: format_money(v, cur)
    out.append('<h2>Charts</h2><div class="charts"><div class="chart" id="delay-chart"><h3>'
               'Settlement delay (sale to money)</h3>%s</div><div class="chart" id="daily-chart">'
               '<h3>Daily gross against settled (by sale date)</h3>%s</div></div>'
               % (_bars(hist, labels, ("#3b82c4", "#d9822b"), ("on time", "late")),
                  _bars(daily, [d[5:] for d in dates], ("#8a93a3", "#2f9e55"),
                        ("gross", "settled"), money)))
    out.append('<p class="sub">daozhang reconcile · amounts in %s · generated offline</p>'
               '</main></body></html>' % _e(cur))
    return "\n".join(out)
