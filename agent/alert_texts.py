"""The terminal's display lines and alert texts in the merchant's language.

The portable core (agent/core/settlement/alerts.py) words its grouped lines in English
for the retained status message; what the merchant reads on the display is
worded here, from the same groups (AlertMachine.status_summary()["groups"]),
through the gettext catalogs of i18n/:

    display_text(summary, texts_for("zh-CN"), now)
        -> "3 笔付款逾期，¥1,250.00，最早 5 天 | 结算日到账短缺 1 笔，¥20.00"

English keeps the core's own words (texts_for("en") returns summary["display"]
unchanged when no `now` is needed).  CPython only: the board's outputs adapter
(agent/outputs.py) calls it.
"""

from daozhang.agent.core.settlement.alerts import KINDS


def NP_(singular, plural):
    """Mark a (singular, plural) pair for extraction (babel.cfg: -k NP_:1,2)."""
    return (singular, plural)


def N_(message):
    return message


# kind -> its count line (n, then money and age are added) or its fixed title
COUNTED = {
    "security": NP_("%(n)d rejected message", "%(n)d rejected messages"),
    "storage_error": NP_("%(n)d storage error", "%(n)d storage errors"),
    "settlement_overdue": NP_("%(n)d payment overdue", "%(n)d payments overdue"),
    "settlement_short": NP_("%(n)d settlement short", "%(n)d settlements short"),
    "fee_over_contract": NP_("%(n)d fee over contract", "%(n)d fees over contract"),
    "mcc_jump": NP_("%(n)d settled under another MCC", "%(n)d settled under another MCC"),
    "region_jump": NP_("%(n)d settled under another region",
                       "%(n)d settled under another region"),
    "deposit_missing": NP_("%(n)d payout missing at the bank",
                           "%(n)d payouts missing at the bank"),
    "deposit_short": NP_("%(n)d payout short at the bank", "%(n)d payouts short at the bank"),
    "unknown_settlement": NP_("%(n)d unknown settlement", "%(n)d unknown settlements"),
    "duplicate_settlement": NP_("%(n)d duplicate settlement", "%(n)d duplicate settlements"),
    "cancelled_settled": NP_("%(n)d cancelled sale settled", "%(n)d cancelled sales settled"),
    "sale_unjudgeable": NP_("%(n)d sale the watchdog cannot judge",
                            "%(n)d sales the watchdog cannot judge"),
}
TITLES = {
    "journal_full": N_("journal full: sales refused"),
    "journal_damaged": N_("journal damaged: call the technician"),
    "clock_untrusted": N_("clock not trusted: deadlines on hold"),
    "sync_backlog": N_("sync backlog"),
    "journal_near_full": N_("journal nearly full"),
    "sync_stalled": N_("sync stalled"),
}
ALL_CLEAR = N_("all payments in order")


def age_text(ms, texts):
    """A short age for a display line ("45m", "7h", "5d" in English)."""
    _ = texts.gettext
    minutes = max(0, ms) // 60000
    if minutes < 60:
        return _("%(n)dm") % {"n": minutes}
    if minutes < 48 * 60:
        return _("%(n)dh") % {"n": minutes // 60}
    return _("%(n)dd") % {"n": minutes // (24 * 60)}


def group_line(group, texts, now=None):
    """One firing kind's line, worst first as the core orders the groups."""
    _ = texts.gettext
    kind = group["kind"]
    if kind in TITLES or (kind in KINDS and not KINDS[kind]["count"]):
        return _(TITLES.get(kind) or KINDS[kind]["nouns"][0])
    singular, plural = COUNTED.get(kind, ("%(n)d " + kind, "%(n)d " + kind))
    parts = [texts.ngettext(singular, plural, group["count"]) % {"n": group["count"]}]
    for currency in sorted(group["amounts"]):
        parts.append(texts.money(group["amounts"][currency], currency))
    if now is not None and group.get("oldest") is not None:
        parts.append(_("oldest %(age)s") % {"age": age_text(now - group["oldest"], texts)})
    return _(", ").join(parts)


def display_text(summary, texts, now=None):
    """The whole display line of a status summary in `texts`' locale."""
    if texts.locale == "en" and now is None:
        return summary["display"]
    lines = [group_line(g, texts, now) for g in summary.get("groups", ())]
    return " | ".join(lines) if lines else texts.gettext(ALL_CLEAR)


def local_summary(summary, texts, now=None):
    """The summary with `lines` and `display` in `texts`' locale (and
    `locale` named), for the display and the status file; the core's English
    summary is unchanged (the backend reads that one)."""
    if texts.locale == "en" and now is None:
        return summary
    out = dict(summary)
    out["lines"] = [group_line(g, texts, now) for g in summary.get("groups", ())]
    out["display"] = " | ".join(out["lines"]) if out["lines"] else texts.gettext(ALL_CLEAR)
    out["locale"] = texts.locale
    return out
