"""Why reconcile's exit code is 1, as short phrases in the report's language.

    verdict_texts(summary, texts_for("zh-CN")) -> ["3 笔交易有问题", ...]

host_tools/reconcile/run.py keeps the English list in summary["verdict"] (the
JSON output and the CLI's last line); the HTML report and the CLI in another
locale ask this module again with their Texts (i18n/).
"""


def verdict_texts(summary, texts):
    """Empty when all settled right."""
    _, ngettext = texts.gettext, texts.ngettext
    reasons = []
    j, f = summary["journal"], summary["settlement_file"]
    if not j["ok"]:
        reasons.append(_("the journal failed verification"))
    left_out = sum(1 for x in j["excluded"] if x["why"] != "uncommitted")
    if left_out:
        reasons.append(ngettext("%(n)d journal transaction could not be checked",
                                "%(n)d journal transactions could not be checked",
                                left_out) % {"n": left_out})
    if f["bad_rows"]:
        n = f.get("bad_count", len(f["bad_rows"]))
        reasons.append(ngettext("%(n)d settlement row could not be read",
                                "%(n)d settlement rows could not be read", n) % {"n": n})
    problems = sum(1 for t in summary["transactions"] if t["status"] == "problem")
    if problems:
        reasons.append(ngettext("%(n)d transaction with a problem",
                                "%(n)d transactions with a problem", problems) % {"n": problems})
    unknown = summary["counts"]["unknown_settlement"]
    if unknown:
        reasons.append(ngettext("%(n)d settlement matching no sale",
                                "%(n)d settlements matching no sale", unknown) % {"n": unknown})
    if f.get("card_masked"):
        reasons.append(ngettext("%(n)d settlement row carried a full card number (masked)",
                                "%(n)d settlement rows carried a full card number (masked)",
                                f["card_masked"]) % {"n": f["card_masked"]})
    payouts = summary.get("payouts")
    if payouts and payouts["counts"]["deposit_missing"]:
        n = payouts["counts"]["deposit_missing"]
        reasons.append(ngettext("%(n)d payout missing at the bank",
                                "%(n)d payouts missing at the bank", n) % {"n": n})
    if payouts and payouts["counts"]["deposit_short"]:
        n = payouts["counts"]["deposit_short"]
        reasons.append(ngettext("%(n)d payout short at the bank",
                                "%(n)d payouts short at the bank", n) % {"n": n})
    return reasons
