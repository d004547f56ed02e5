"""HTML of the fleet view: server-rendered, charts as inline SVG, no JS bundle.

The page is one panel (`panel_html`) that the browser fetches again every
`refresh` seconds (/panel) and swaps in: one renderer for the first load
and the live updates.  Every number a test or a person reads has an id.
"""

import html
import json

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:16px;align-items:baseline}
header h1{font-size:20px;margin:0} header span{color:#aab}
main{padding:16px 20px}
#panel{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:14px;align-items:start}
section{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px #0002}
h2{font-size:14px;margin:0 0 8px;color:#556;text-transform:uppercase;letter-spacing:.04em}
.big{display:flex;gap:18px;flex-wrap:wrap}.big div{min-width:70px}
.big b{display:block;font-size:26px}.big small{color:#667}
.ok{color:#1a7f37}.warn{color:#b35900}.bad{color:#c62828}.muted{color:#889}
table{border-collapse:collapse;width:100%;font-size:13px}
td,th{padding:3px 6px;border-bottom:1px solid #eee;text-align:left}td.n{text-align:right}
a{color:#2457c5;text-decoration:none}
"""


def esc(value):
    return html.escape(str(value))


def money(minor):
    """Minor units (fen) as yuan: 123456 -> ¥1,234.56."""
    minor = int(minor or 0)
    sign = "-" if minor < 0 else ""
    return "%s¥%s.%02d" % (sign, "{:,}".format(abs(minor) // 100), abs(minor) % 100)


def bar_chart(items, fmt=str, color="#2457c5", width=340):
    """Horizontal bars as inline SVG: items are (label, value)."""
    items = [(label, value) for label, value in items if value]
    if not items:
        return '<p class="muted">none</p>'
    top = max(v for _, v in items) or 1
    row = 20
    parts = ['<svg role="img" width="%d" height="%d" viewBox="0 0 %d %d">'
             % (width, row * len(items), width, row * len(items))]
    for i, (label, value) in enumerate(items):
        w = max(2, int((width - 200) * value / top))
        y = i * row
        parts.append('<text x="0" y="%d" font-size="12">%s</text>' % (y + 14, esc(str(label)[:16])))
        parts.append('<rect x="118" y="%d" width="%d" height="14" fill="%s" rx="2"/>' % (y + 3, w, color))
        parts.append('<text x="%d" y="%d" font-size="11" fill="#333">%s</text>'
                     % (122 + w, y + 14, esc(fmt(value))))
    parts.append("</svg>")
    return "".join(parts)


def donut(parts, size=110):
    """A ring chart of (label, value, color), for online/offline/silent."""
    total = sum(v for _, v, _ in parts) or 1
    r, c = 40, 2 * 3.14159 * 40
    out = ['<svg width="%d" height="%d" viewBox="0 0 100 100" role="img">' % (size, size)]
    offset = 0.0
    for label, value, color in parts:
        if not value:
            continue
        length = c * value / total
        out.append('<circle cx="50" cy="50" r="%d" fill="none" stroke="%s" stroke-width="16" '
                   'stroke-dasharray="%.2f %.2f" stroke-dashoffset="%.2f" transform="rotate(-90 50 50)">'
                   '<title>%s: %d</title></circle>' % (r, color, length, c - length, -offset,
                                                       esc(label), value))
        offset += length
    out.append("</svg>")
    return "".join(out)


def _big(items):
    return '<div class="big">%s</div>' % "".join(
        '<div><b id="%s" class="%s">%s</b><small>%s</small></div>' % (i, cls, esc(v), esc(label))
        for i, v, label, cls in items)


def panel_html(o):
    t, s, ov = o["terminals"], o["stats"], o["overdue"]
    alerts = o["alerts_firing"]
    oldest = o["oldest_unsettled"]
    sections = []
    sections.append("<section><h2>Terminals</h2>%s%s</section>" % (
        donut([("online", t["online"], "#1a7f37"), ("offline", t["offline"], "#c62828"),
               ("unknown", t["unknown"], "#99a")]),
        _big([("terminals-total", t["total"], "registered", ""),
              ("terminals-online", t["online"], "online", "ok"),
              ("terminals-offline", t["offline"], "offline", "bad" if t["offline"] else ""),
              ("terminals-silent", t["silent"], "silent > %gs" % t["silent_after_s"],
               "warn" if t["silent"] else ""),
              ("terminals-unknown", t["unknown"], "never heard", "muted")])))
    sections.append("<section><h2>Backend store</h2>%s</section>" % _big([
        ("stat-devices", s["devices"], "devices", ""), ("stat-records", s["records"], "records", ""),
        ("stat-receipts", s["receipts"], "receipts", ""), ("stat-alerts", s["alerts"], "alerts", ""),
        ("stat-findings", s["findings"], "findings", "bad" if s["findings"] else "ok")]))
    backlog = o["backlog"]
    sections.append("<section><h2>Backlog (not yet acked)</h2>%s%s</section>" % (
        _big([("backlog-total", backlog["total"], "records, %d reporting" % backlog["reporting"], "")]),
        bar_chart([(b["device"], b["backlog"]) for b in backlog["top"]], color="#b35900")))
    oldest_html = ('<p id="oldest-unsettled"><a href="/terminal/%s">%s</a> seq %d, %s, received %s</p>'
                   % (esc(oldest["device"]), esc(oldest["device"]), oldest["seq"], money(oldest["amount"]),
                      '<span class="ts" data-ms="%d"></span>' % oldest["received_at"])
                   if oldest else '<p id="oldest-unsettled" class="ok">every sale settled</p>')
    sections.append("<section><h2>Money overdue (unsettled &gt; %gh)</h2>%s%s<h2>per acquirer</h2>%s"
                    "<h2>per merchant</h2>%s</section>" % (
                        ov["after_s"] / 3600.0,
                        _big([("overdue-total", money(ov["total"]), "%d sales" % ov["count"],
                               "bad" if ov["total"] else "ok")]),
                        "<h2>oldest unsettled sale</h2>" + oldest_html,
                        bar_chart(list(ov["by_acquirer"].items()), money, "#c62828"),
                        bar_chart([(m["merchant"], m["amount"]) for m in ov["by_merchant"]], money, "#c62828")))
    sections.append("<section><h2>Alerts firing</h2>%s<h2>by kind</h2>%s<h2>by region</h2>%s</section>" % (
        _big([("alerts-firing", alerts["total"], "firing", "warn" if alerts["total"] else "ok")]),
        bar_chart(sorted(alerts["by_kind"].items()), color="#b35900"),
        bar_chart(sorted(alerts["by_region"].items()), color="#7b3fb5")))
    disc = o["discrepancies"]
    rows = "".join('<tr><td>%s</td><td class="n">%d</td><td class="n">%d</td></tr>'
                   % (esc(a), d["unmatched"], d["short"]) for a, d in disc.items())
    sections.append('<section><h2>Settlement discrepancies per acquirer</h2><table id="discrepancies">'
                    '<tr><th>acquirer</th><th>no receipt</th><th>settled short</th></tr>%s</table>'
                    '<h2>findings by kind</h2>%s</section>'
                    % (rows or '<tr><td colspan="3" class="ok">none</td></tr>',
                       bar_chart(sorted(o["findings_by_kind"].items()), color="#c62828")))
    silent = "".join('<li><a href="/terminal/%s">%s</a></li>' % (esc(d), esc(d)) for d in o["silent_devices"])
    sections.append('<section><h2>Silent terminals</h2><ul id="silent-list">%s</ul></section>'
                    % (silent or '<li class="ok">none</li>'))
    return '<div id="panel" data-generated="%d">%s</div>' % (o["generated_at"], "".join(sections))


_SCRIPT = """
<script>
function stamp(root){root.querySelectorAll('.ts').forEach(function(e){
  e.textContent=new Date(+e.dataset.ms).toISOString().replace('T',' ').slice(0,19)+'Z';});}
stamp(document);
setInterval(function(){fetch('/panel').then(function(r){return r.text();}).then(function(t){
  var box=document.getElementById('live');box.innerHTML=t;stamp(box);
  document.getElementById('updated').textContent=new Date().toISOString().slice(11,19)+'Z';
}).catch(function(){document.getElementById('updated').textContent='backend unreachable';});},
REFRESH_MS);
</script>
"""


def fleet_page(overview, refresh_s):
    return ("<!doctype html><html><head><meta charset='utf-8'><title>到账 daozhang fleet</title>"
            "<style>%s</style></head><body><header><h1>daozhang fleet</h1>"
            "<span>refresh every %gs, updated <b id='updated'>now</b></span>"
            "<span><a style='color:#9bf' href='/metrics'>/metrics</a> "
            "<a style='color:#9bf' href='/api/overview'>/api/overview</a></span></header>"
            "<main id='live'>%s</main>%s</body></html>"
            % (STYLE, refresh_s, panel_html(overview),
               _SCRIPT.replace("REFRESH_MS", str(int(refresh_s * 1000)))))


def terminal_page(t):
    ck = t["last_checkpoint"]
    ck_html = ("seq <b id='checkpoint-seq'>%d</b>, received <span class='ts' data-ms='%d'></span>, "
               "signature <b id='checkpoint-sig' class='%s'>%s</b>"
               % (ck["seq"], ck["received_at"], "ok" if ck["signature_verified"] else "warn",
                  "Ed25519, verified at ingest" if ck["signature_verified"] else "none (signer outage)")
               if ck else "none stored yet")
    alerts = "".join("<tr><td>%s</td><td>%s</td><td>%s</td></tr>" % (esc(a["kind"]), esc(a["state"]),
                                                                     esc(a["severity"])) for a in t["alerts"])
    recon = "".join("<tr><td>%s</td><td class='n'>%d</td><td class='n'>%s</td></tr>"
                    % (esc(r["status"]), r["count"], money(r["amount"])) for r in t["reconciliation"])
    findings = "".join("<tr><td>%s</td><td>%s</td><td>%s</td></tr>" % (esc(f["seq"]), esc(f["kind"]),
                                                                       esc(f["detail"])) for f in t["findings"])
    body = ("<section><h2>Connection</h2><p>state <b id='terminal-state'>%s</b>, counters <code>%s</code></p>"
            "<p>stored contiguously to seq %s; last ack %s</p></section>"
            "<section><h2>Last checkpoint</h2><p>%s</p></section>"
            "<section><h2>Alerts firing</h2><table>%s</table></section>"
            "<section><h2>Reconciliation</h2><table><tr><th>status</th><th>sales</th><th>amount</th></tr>%s"
            "</table></section><section><h2>Findings</h2><table>%s</table></section>"
            % (esc(t["state"]), esc(json.dumps(t["counters"], sort_keys=True)), esc(t["contiguous_seq"]),
               esc(t["last_ack"]["to"]) if t["last_ack"] else "none", ck_html,
               alerts or "<tr><td class='ok'>none</td></tr>", recon or "<tr><td>no sales</td></tr>",
               findings or "<tr><td class='ok'>none</td></tr>"))
    return ("<!doctype html><html><head><meta charset='utf-8'><title>%s - daozhang</title><style>%s</style>"
            "</head><body><header><h1>%s</h1><span><a style='color:#9bf' href='/'>fleet</a></span></header>"
            "<main>%s</main>%s</body></html>"
            % (esc(t["device"]), STYLE, esc(t["device"]), body,
               "<script>document.querySelectorAll('.ts').forEach(function(e){e.textContent="
               "new Date(+e.dataset.ms).toISOString();});</script>"))
