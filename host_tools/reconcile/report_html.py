"""The reconcile report as one self-contained HTML file.

Inline CSS and inline SVG only: no script, no font, no link to anything, so
it opens offline from a USB stick.  Every value that came from the journal
or the settlement file goes through `_e` (html.escape), so a CSV field such
as `<script>` shows as text.  Input: the summary of host_tools/reconcile/run.py.

Words are in the summary's `locale` (i18n/: gettext catalogs, "en" or
"zh-CN"); money and times are formatted for it, and the font stack names
the CJK faces so Chinese renders where any of them is installed.
"""

from html import escape

from daozhang.agent.core.settlement.settlement_checks import COUNT_NAMES
from daozhang.host_tools.reconcile.verdict import verdict_texts
from daozhang.host_tools.reconcile.report_payouts import payout_section
from daozhang.i18n import CJK_FONT_STACK, N_, texts_for

HOUR = 3600 * 1000
DAY = 24 * HOUR
# Settlement delay buckets (sale to first settlement): label, upper bound (ms).
DELAY_BUCKETS = ((N_("< 1 h"), HOUR), (N_("1-6 h"), 6 * HOUR), (N_("6-24 h"), DAY),
                 (N_("1-2 d"), 2 * DAY), (N_("2-3 d"), 3 * DAY), (N_("3-5 d"), 5 * DAY),
                 (N_("5-7 d"), 7 * DAY), (N_("> 7 d"), None))
MAX_DAYS = 62
MAX_ROWS = 2000          # per table: a browser stays usable; --json has every one
KIND_LABELS = {"sale": N_("sale"), "refund": N_("refund"), "void": N_("void"),
               "reversal": N_("reversal"), "preauth_completion": N_("pre-auth completion")}
COUNT_LABELS = {"ok": N_("settled right"), "not_arrived": N_("never arrived"), "late": N_("late"),
                "short": N_("short"), "over_fee": N_("fee over contract"),
                "mcc_jump": N_("other MCC"), "region_jump": N_("other region"),
                "unknown_settlement": N_("unknown settlements"),
                "duplicate_settlement": N_("duplicate settlements"),
                "cancelled_settled": N_("cancelled but settled"), "pending": N_("pending"),
                "cancelled": N_("cancelled")}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,%(cjk)s;
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
svg text{font:11px system-ui,%(cjk)s;fill:#3b4250}
code{font-size:12px}
@media (max-width:800px){.charts{grid-template-columns:1fr}}
@media print{body{background:#fff}}
""".replace("%(cjk)s", CJK_FONT_STACK)


def _e(value):
    return escape("" if value is None else str(value), quote=True)


def _texts(summary):
    return texts_for(summary.get("locale") or "en")


def _duration(ms, texts=None):
    if ms is None:
        return ""
    _ = (texts or texts_for("en")).gettext
    minutes = ms // 60000
    if minutes < 60:
        return _("%(m)d min") % {"m": minutes}
    hours = minutes // 60
    if hours < 48:
        return (_("%(h)d h %(m)d min") % {"h": hours, "m": minutes % 60} if minutes % 60
                else _("%(h)d h") % {"h": hours})
    return (_("%(d)d d %(h)d h") % {"d": hours // 24, "h": hours % 24} if hours % 24
            else _("%(d)d d") % {"d": hours // 24})


def explain(txn, summary):
    """One line per failed check: which, and by how much."""
    cur = summary["currency"]
    m = summary["merchant"]
    t = _texts(summary)
    _ = t.gettext
    money = lambda v: t.money(v, cur)
    when = lambda text: t.when(text)
    out = []
    for check in txn["checks"]:
        if check == "not_arrived":
            why = _("due %(due)s; nothing by %(as_of)s (overdue %(overdue)s)") % {
                "due": when(txn["deadline"]), "as_of": when(summary["as_of"]),
                "overdue": _duration(summary["as_of_ms"] - txn["deadline_ms"], t)}
        elif check == "late":
            why = _("by %(late)s (due %(due)s, settled %(settled)s)") % {
                "late": _duration(txn["late_by_ms"], t), "due": when(txn["deadline"]),
                "settled": when(txn["settled_at"])}
        elif check == "short":
            why = _("by %(short)s (settled %(settled)s, expected %(expected)s after the stated "
                    "fee)") % {"short": money(txn["shortfall"]),
                               "settled": money(txn["settled_amount"]),
                               "expected": money(txn["expected_settled"])}
        elif check == "over_fee":
            why = _("fee %(fee)s, contract %(contract)s (+%(excess)s)") % {
                "fee": money(txn["reported_fee"]), "contract": money(txn["contracted_fee"]),
                "excess": money(txn["fee_excess"])}
        elif check == "mcc_jump":
            why = _("settled under MCC %(mcc)s, contract %(contract)s") % {
                "mcc": txn["mcc"], "contract": m["mcc"]}
        elif check == "region_jump":
            why = _("settled under region %(region)s, contract %(contract)s") % {
                "region": txn["region"], "contract": m["region"]}
        elif check == "duplicate_settlement":
            why = _("settled %(n)d times: %(refs)s") % {"n": len(txn["acquirer_refs"]),
                                                        "refs": ", ".join(txn["acquirer_refs"])}
        elif check == "cancelled_settled":
            what = ({"void": _("a void record"), "reversal": _("a reversal record")}.get(
                txn["kind"]) or _("voided or reversed"))
            why = _("%(what)s, so no money was due; settled as %(refs)s") % {
                "what": what, "refs": ", ".join(txn["acquirer_refs"])}
        else:
            why = ""
        out.append((check, why))
    return out


def _count_cards(summary):
    _ = _texts(summary).gettext
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
                     % (cls, " zero" if not n else "", name, n, _e(_(COUNT_LABELS[name])), name))
    return '<div class="cards" id="counts">%s</div>' % "".join(cells)


def _money_cards(summary):
    t = _texts(summary)
    _ = t.gettext
    labels = (("gross", _("gross sales")),
              ("expected_net", _("expected net (after contracted fees)")),
              ("settled", _("settled")), ("missing", _("missing")))
    return '<div class="money" id="totals">%s</div>' % "".join(
        '<div data-total="%s"><span class="v">%s</span>%s</div>'
        % (name, _e(t.money(summary["totals"][name], summary["currency"])), _e(label))
        for name, label in labels)


def _problem_rows(summary):
    cur = summary["currency"]
    t = _texts(summary)
    _ = t.gettext
    rows = []
    problems = [x for x in summary["transactions"] if x["status"] == "problem"]
    for x in problems[:MAX_ROWS]:
        whys = "".join('<div><span class="tag">%s</span><span class="why">%s</span></div>'
                       % (_e(check), _e(why)) for check, why in explain(x, summary))
        rows.append('<tr data-seq="%s"><td>%s</td><td><code>%s</code><br><span class="why">'
                    '%s</span></td><td class="num">%s</td><td><code>%s</code></td>'
                    '<td>%s</td></tr>'
                    % (_e(x["seq"]), _e(t.when(x["time"])), _e(x["pos_txn_id"]),
                       _e(_("%(kind)s, seq %(seq)s") % {
                           "kind": _(KIND_LABELS[x["kind"]]) if x["kind"] in KIND_LABELS
                           else x["kind"], "seq": x["seq"]}),
                       _e(t.money(x["amount"], cur)), _e(x["card"]), whys))
    if not rows:
        return '<p id="problems">%s</p>' % _e(_("No problem transactions."))
    return ('<table id="problems"><tr><th>%s</th><th>%s</th><th>%s</th><th>%s</th><th>%s</th>'
            '</tr>%s</table>%s'
            % (tuple(_e(h) for h in (_("time"), _("transaction"), _("amount"), _("card"),
                                     _("what failed, by how much")))
               + ("".join(rows), _more(len(problems), t))))


def _more(total, texts=None):
    if total <= MAX_ROWS:
        return ""
    _ = (texts or texts_for("en")).gettext
    return '<p class="sub">%s</p>' % _e(
        _("... and %(n)d more (the --json output lists every one).") % {"n": total - MAX_ROWS})


def _unknown_rows(summary):
    cur = summary["currency"]
    if not summary["unknown_settlements"]:
        return ""
    t = _texts(summary)
    _ = t.gettext
    rows = "".join(
        '<tr><td>%s</td><td><code>%s</code></td><td>%s</td><td class="num">%s</td>'
        '<td><code>%s</code></td><td>%s</td></tr>'
        % (_e(t.when(u["settled_at"])), _e(u["acquirer_ref"]), _e(u["line"]),
           _e(t.money(u["settled_amount"], cur)), _e(u["card"]),
           _e(_("rrn %(rrn)s, auth %(auth)s, terminal %(terminal)s") % {
               "rrn": u["rrn"], "auth": u["auth_code"], "terminal": u["terminal_id"]}))
        for u in summary["unknown_settlements"][:MAX_ROWS])
    heads = "".join("<th>%s</th>" % _e(h) for h in (
        _("settled"), _("acquirer ref"), _("file line"), _("settled amount"), _("card"),
        _("identifiers")))
    return ('<h2>%s</h2><table id="unknown"><tr>%s</tr>%s</table>%s'
            % (_e(_("Settlements matching no sale in the journal")), heads, rows,
               _more(len(summary["unknown_settlements"]), t)))


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
    _ = _texts(summary).gettext
    counts = [[0, 0] for _ in DELAY_BUCKETS]
    for t in summary["transactions"]:
        if t["delay_ms"] is None:
            continue
        for i, (_label, upper) in enumerate(DELAY_BUCKETS):
            if upper is None or t["delay_ms"] < upper:
                counts[i][1 if t["late_by_ms"] else 0] += 1
                break
    return [_(b[0]) for b in DELAY_BUCKETS], [tuple(c) for c in counts]


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
    t = _texts(summary)
    _, ngettext = t.gettext, t.ngettext
    m, j, s = summary["merchant"], summary["journal"], summary["settlement_file"]
    title = _("Settlement reconciliation: %(merchant)s") % {
        "merchant": m.get("name") or m.get("merchant_id")}
    out = ['<!DOCTYPE html><html lang="%s"><head><meta charset="utf-8">'
           '<meta name="viewport" content="width=device-width,initial-scale=1">'
           '<title>%s</title><style>%s</style></head><body><main>'
           % (_e(t.locale), _e(title), CSS)]
    out.append('<h1>%s</h1><div class="sub">%s</div>' % (_e(title), _e(_(
        "merchant %(merchant)s · terminal %(terminal)s · MCC %(mcc)s · region %(region)s · "
        "times in %(zone)s · as of %(as_of)s") % {
            "merchant": m["merchant_id"], "terminal": m["terminal_id"], "mcc": m["mcc"],
            "region": m["region"], "zone": m["timezone"], "as_of": t.when(summary["as_of"])})))
    if not j["ok"]:
        bad = [f for f in j["findings"] if not f["informational"]]
        out.append('<div class="tamper" id="tamper"><strong>%s</strong> %s<ul>%s</ul></div>'
                   % (_e(ngettext("This journal FAILED verification (%(n)d finding).",
                                  "This journal FAILED verification (%(n)d findings).",
                                  len(bad)) % {"n": len(bad)}),
                      _e(ngettext("It may have been altered. The figures below count only the "
                                  "records that remain; %(n)d transaction was left out.",
                                  "It may have been altered. The figures below count only the "
                                  "records that remain; %(n)d transactions were left out.",
                                  len(j["excluded"])) % {"n": len(j["excluded"])}),
                      "".join("<li>%s</li>" % _e(_("%(kind)s at seq %(seq)s: %(message)s") % {
                          "kind": f["kind"], "seq": f["seq"], "message": f["message"]})
                          for f in bad[:20])))
    verdict = (_("All sales settled right; journal intact.") if summary["ok"] else
               _("Not all in order: %(reasons)s.") % {"reasons": _("; ").join(
                   verdict_texts(summary, t))})
    out.append('<div class="verdict %s" id="verdict">%s</div>'
               % ("ok" if summary["ok"] else "bad", _e(verdict)))
    out.append('<div class="sub">%s</div>' % _e(_(
        "journal %(journal)s: device %(device)s, %(n)d transactions (seq %(first)s..%(last)s), "
        "%(state)s · settlement file %(file)s (%(format)s): %(rows)d rows, %(bad)d bad, "
        "%(repeated)d repeated, %(masked)d with a card number masked") % {
            "journal": j["path"], "device": j["device_id"], "n": j["transactions"],
            "first": j["first_seq"], "last": j["last_seq"],
            "state": _("intact") if j["ok"] else _("NOT intact"), "file": s["path"],
            "format": s.get("format"), "rows": s["rows"],
            "bad": s.get("bad_count", len(s["bad_rows"])), "repeated": s["repeated"],
            "masked": s.get("card_masked", 0)}))
    out.append("<h2>%s</h2>%s" % (_e(_("Summary")), _count_cards(summary)))
    out.append("<h2>%s</h2>%s" % (_e(_("Money")), _money_cards(summary)))
    out.append("<h2>%s</h2>%s" % (_e(_("Problem transactions")), _problem_rows(summary)))
    out.append(_unknown_rows(summary))
    out.append(payout_section(summary))
    if s["bad_rows"]:
        out.append('<h2>%s</h2><table id="bad-rows"><tr><th>%s</th><th>%s</th></tr>%s</table>'
                   % (_e(_("Unreadable settlement rows")), _e(_("line")), _e(_("why")), "".join(
                       '<tr><td class="num">%s</td><td>%s</td></tr>' % (_e(b["line"]), _e(b["reason"]))
                       for b in s["bad_rows"][:MAX_ROWS])) + _more(len(s["bad_rows"]), t))
    if j["excluded"]:
        out.append('<h2>%s</h2><table id="excluded"><tr><th>seq</th><th>%s</th><th>%s</th></tr>'
                   '%s</table>' % (_e(_("Journal transactions left out")), _e(_("transaction")),
                                   _e(_("why")), "".join(
                       '<tr><td class="num">%s</td><td><code>%s</code></td><td>%s</td></tr>'
                       % (_e(x["seq"]), _e(x["pos_txn_id"]), _e(x["reason"]))
                       for x in j["excluded"][:MAX_ROWS])) + _more(len(j["excluded"]), t))
    labels, hist = delay_histogram(summary)
    dates, daily = daily_money(summary)
    money = lambda v: t.money(v, cur)
    out.append('<h2>%s</h2><div class="charts"><div class="chart" id="delay-chart"><h3>'
               '%s</h3>%s</div><div class="chart" id="daily-chart">'
               '<h3>%s</h3>%s</div></div>'
               % (_e(_("Charts")), _e(_("Settlement delay (sale to money)")),
                  _bars(hist, labels, ("#3b82c4", "#d9822b"), (_("on time"), _("late"))),
                  _e(_("Daily gross against settled (by sale date)")),
                  _bars(daily, [d[5:] for d in dates], ("#8a93a3", "#2f9e55"),
                        (_("gross"), _("settled")), money)))
    out.append('<p class="sub">%s</p></main></body></html>' % _e(
        _("daozhang reconcile · amounts in %(currency)s · generated offline") % {"currency": cur}))
    return "\n".join(out)
