"""Stripe payout reconciliation, itemized (`payout_reconciliation.itemized.5`).

Sources: https://docs.stripe.com/payouts/reconciliation and Stripe's report
type docs (gross, fee, net "expressed in major units of the currency"; net =
gross - fee; one row per balance transaction).  UTF-8 RFC 4180 CSV; times
`YYYY-MM-DD HH:MM:SS`, the `_utc` columns in UTC.  Rows that are not payments
(reporting_category fee, payout, ...) are counted as other lines, not
settlements; disputes take money back like a refund.  SPEC §7.9.4.
"""

NAME = "stripe"
LAYOUT = {
    "file": {"type": "csv", "encoding": "utf-8"},
    "times": {"format": "%Y-%m-%d %H:%M:%S", "timezone": "UTC"},
    "kinds": {"charge": "sale", "refund": "refund", "dispute": "refund",
              "dispute_reversal": "sale", "partial_capture_reversal": "refund",
              "fee": "other", "payout": "other", "other_adjustment": "other"},
    "amounts": {"scale": 2},
    "columns": {
        "acquirer_ref": "balance_transaction_id", "order_id": "order_id",
        "txn_time": "created_utc", "kind": "reporting_category",
        "amount": "gross", "fee": "fee", "settled_amount": "net",
        "settled_at": "automatic_payout_effective_at_utc",
    },
}


def sniff(name, head):
    if b"balance_transaction_id" in head and b"reporting_category" in head:
        return "a header with balance_transaction_id and reporting_category"
    return None
