"""Adyen Settlement details report (SDR).

Source: https://docs.adyen.com/reporting/settlement-reconciliation/
transaction-level/settlement-details-report (column names as in
github.com/wikimedia/wikimedia-fundraising-SmashPig AdyenSettlementDetailReport
.php).  UTF-8 CSV, decimal major units, direction by column (Gross Debit vs
Gross Credit, Net Debit vs Net Credit), the fee spread over Commission,
Markup, Scheme Fees and Interchange; Creation Date in the zone of the
TimeZone column (CET/CEST: Europe/Amsterdam assumed).  Rows that are not
payments (Fee, MerchantPayout, ...) are counted as other lines.  SPEC §7.9.4.
"""

NAME = "adyen"
LAYOUT = {
    "file": {"type": "csv", "encoding": "utf-8", "settled_at": "file_date"},
    "times": {"format": "%Y-%m-%d %H:%M:%S", "timezone": "Europe/Amsterdam"},
    "kinds": {"Settled": "sale", "SettledBulk": "sale", "Refunded": "refund",
              "RefundedBulk": "refund", "Chargeback": "refund", "ChargebackReversed": "sale",
              "Fee": "other", "MerchantPayout": "other", "InvoiceDeduction": "other",
              "DepositCorrection": "other", "Balancetransfer": "other"},
    "amounts": {"scale": 2},
    "columns": {
        "acquirer_ref": "Modification Reference", "order_id": "Merchant Reference",
        "txn_time": "Creation Date", "kind": "Type",
        "amount": {"credit": "Gross Credit (GC)", "debit": "Gross Debit (GC)"},
        "fee": {"sum": ["Commission (NC)", "Markup (NC)", "Scheme Fees (NC)",
                        "Interchange (NC)"]},
        "settled_amount": {"credit": "Net Credit (NC)", "debit": "Net Debit (NC)"},
        "settled_at": {"from": "Booking Date", "format": "%Y-%m-%d %H:%M:%S"},
    },
}


def sniff(name, head):
    if b"Psp Reference" in head and b"Modification Reference" in head:
        return "a header with Psp Reference and Modification Reference"
    return None
