"""The reconcile report's bank section: each settlement day's payout and the
chain sale -> settlement row -> payout -> bank line (SPEC §7.10).

Input: summary["payouts"] of host_tools/reconcile/run.py (None without --bank).
Every outside value goes through html.escape, as in report_html.py.
"""

from html import escape

from daozhang.agent.core.alerts import format_money

MAX_LISTED = 30          # sales and lines named per payout; --json has them all
STATUS_LABELS = {"ok": "arrived", "deposit_missing": "MISSING at the bank",
                 "deposit_short": "SHORT at the bank", "no_payout_expected": "nothing due"}


def _e(value):
    return escape("" if value is None else str(value), quote=True)


def _listed(values):
    shown = ", ".join(_e(v) for v in values[:MAX_LISTED])
    return shown + (" ..." if len(values) > MAX_LISTED else "")


def payout_section(summary):
    payouts = summary.get("payouts")
    if not payouts:
        return ""
    cur = summary["currency"]
    money = lambda v: "" if v is None else _e(format_money(v, cur))
    rows = []
    for p in payouts["days"]:
        bad = p["status"] in ("deposit_missing", "deposit_short")
        bank = ("line %s, %s%s" % (_e(p["bank_line"]), _e(p["bank_day"]),
                                   (": " + _e(p.get("counterparty"))) if p.get("counterparty")
                                   else "") if p["bank_line"] is not None else "none")
        rows.append('<tr class="%s"><td>%s</td><td>%s</td><td>lines %s</td><td>%s<br>'
                    '<span class="why">expected %s</span></td><td>%s<br><span class="why">'
                    'received %s</span></td><td>%s</td></tr>'
                    % ("bad" if bad else "", _listed(p["sales"]) or "-",
                       _e(p["rows"]), _listed(p["lines"]), _e(p["day"]), money(p["expected"]),
                       bank, money(p["received"]),
                       ('<span class="tag">%s</span>' if bad else "%s")
                       % _e(STATUS_LABELS.get(p["status"], p["status"]))))
    extra = ""
    if payouts["unexplained"]:
        extra = ('<p class="sub" id="unexplained">%d bank credit(s) match no settlement day: '
                 '%s</p>' % (len(payouts["unexplained"]), ", ".join(
                     "line %s (%s, %s)" % (_e(c["line"]), _e(c["day"]), money(c["amount"]))
                     for c in payouts["unexplained"][:MAX_LISTED])))
    return ('<h2>Money to the bank account</h2><p class="sub">bank statement %s: %d credits '
            'considered; a payout may arrive up to %d day(s) after its settlement day.</p>'
            '<table id="payouts"><tr><th>sales</th><th>settlement rows</th><th>file lines</th>'
            '<th>payout (settlement day)</th><th>bank line</th><th>status</th></tr>%s</table>%s'
            % (_e(payouts["bank"]["path"]), payouts["bank"]["credits"],
               payouts["bank"]["window_days"], "".join(rows), extra))
