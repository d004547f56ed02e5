"""The reconcile report's bank section: each settlement day's payout and the
chain sale -> settlement row -> payout -> bank line (SPEC §7.10).

Input: summary["payouts"] of host_tools/reconcile/run.py (None without --bank).
Every outside value goes through html.escape, as in report_html.py.
"""

from html import escape

from daozhang.i18n import N_, texts_for

MAX_LISTED = 30          # sales and lines named per payout; --json has them all
STATUS_LABELS = {"ok": N_("arrived"), "deposit_missing": N_("MISSING at the bank"),
                 "deposit_short": N_("SHORT at the bank"), "no_payout_expected": N_("nothing due")}


def _e(value):
    return escape("" if value is None else str(value), quote=True)


def _html(template, **parts):
    """A translated template escaped, then filled with parts already HTML."""
    return _e(template) % parts


def _listed(values):
    shown = ", ".join(_e(v) for v in values[:MAX_LISTED])
    return shown + (" ..." if len(values) > MAX_LISTED else "")


def payout_section(summary):
    payouts = summary.get("payouts")
    if not payouts:
        return ""
    cur = summary["currency"]
    t = texts_for(summary.get("locale") or "en")
    _, ngettext = t.gettext, t.ngettext
    money = lambda v: "" if v is None else _e(t.money(v, cur))
    rows = []
    for p in payouts["days"]:
        bad = p["status"] in ("deposit_missing", "deposit_short")
        if p["bank_line"] is None:
            bank = _e(_("none"))
        else:
            bank = _e(_("line %(line)s, %(day)s") % {"line": p["bank_line"],
                                                     "day": t.date(p["bank_day"])})
            if p.get("counterparty"):
                bank += ": " + _e(p["counterparty"])
        rows.append('<tr class="%s"><td>%s</td><td>%s</td><td>%s</td><td>%s<br>'
                    '<span class="why">%s</span></td><td>%s<br><span class="why">'
                    '%s</span></td><td>%s</td></tr>'
                    % ("bad" if bad else "", _listed(p["sales"]) or "-",
                       _e(p["rows"]), _html(_("lines %(lines)s"), lines=_listed(p["lines"])),
                       _e(t.date(p["day"])), _html(_("expected %(money)s"),
                                                   money=money(p["expected"])), bank,
                       _html(_("received %(money)s"), money=money(p["received"])),
                       ('<span class="tag">%s</span>' if bad else "%s")
                       % _e(_(STATUS_LABELS[p["status"]]) if p["status"] in STATUS_LABELS
                            else p["status"])))
    extra = ""
    if payouts["unexplained"]:
        n = len(payouts["unexplained"])
        extra = ('<p class="sub" id="unexplained">%s %s</p>' % (
            _e(ngettext("%(n)d bank credit matches no settlement day:",
                        "%(n)d bank credits match no settlement day:", n) % {"n": n}),
            ", ".join(_e(_("line %(line)s (%(day)s, %(money)s)") % {
                "line": c["line"], "day": t.date(c["day"]),
                "money": t.money(c["amount"], cur)})
                for c in payouts["unexplained"][:MAX_LISTED])))
    window = payouts["bank"]["window_days"]
    heads = "".join("<th>%s</th>" % _e(h) for h in (
        _("sales"), _("settlement rows"), _("file lines"), _("payout (settlement day)"),
        _("bank line"), _("status")))
    return ('<h2>%s</h2><p class="sub">%s</p><table id="payouts"><tr>%s</tr>%s</table>%s'
            % (_e(_("Money to the bank account")), _e(ngettext(
                "bank statement %(path)s: %(credits)d credits considered; a payout may arrive "
                "up to %(n)d day after its settlement day.",
                "bank statement %(path)s: %(credits)d credits considered; a payout may arrive "
                "up to %(n)d days after its settlement day.", window) % {
                    "path": payouts["bank"]["path"], "credits": payouts["bank"]["credits"],
                    "n": window}),
               heads, "".join(rows), extra))
