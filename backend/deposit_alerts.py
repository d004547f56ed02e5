"""Deposit findings to the terminals (docs/SPEC.md §7.10.2).

`backend settle --bank` checks each settlement day's payout against the bank
statement (settlement_files/payouts.py).  For a day whose payout is missing
or short, every terminal whose sales the day's rows matched gets one signed
"deposit" message (agent/core/sync/deposit_alert.py) naming the day, the expected
and received amounts and its own sales, published on daozhang/v1/<dev>/acks
(QoS 1, the terminal's persistent session holds it while it is offline).
The terminal raises alert deposit_missing / deposit_short keyed by the day,
so a second run of the same files raises nothing new there.

No MQTT here: `publish(device_id, payload)` is an input, as in settle.py.
"""

import os
import time

from daozhang.agent.core.sync import deposit_alert

FINDINGS = deposit_alert.STATUSES
# Settlement files and bank statements carry minor units without a currency
# code; the acquirer formats built in are CNY (Stripe and Adyen aside).
DEFAULT_CURRENCY = "CNY"


def deposit_payloads(days, signer, currency, clock=None, random_bytes=os.urandom):
    """check_payouts() days -> [(device_id, payload)], one per terminal and
    finding, in day then device order; `signer` an AckSigner."""
    clock = clock or (lambda: time.time_ns() // 1000000)
    out = []
    for day in days:
        if day["status"] not in FINDINGS:
            continue
        for device_id, sales in sorted((day.get("devices") or {}).items()):
            payout = dict(day)
            payout["sales"] = sales
            out.append((device_id, deposit_alert.encode(
                device_id, random_bytes(deposit_alert.ID_SIZE), clock(), payout, currency,
                signer.kid, signer.signer.sign)))
    return out


def send_deposit_alerts(days, signer, currency, publish, clock=None, random_bytes=os.urandom):
    """Sign and publish; returns {device_id: messages sent}."""
    sent = {}
    for device_id, payload in deposit_payloads(days, signer, currency, clock, random_bytes):
        publish(device_id, payload)
        sent[device_id] = sent.get(device_id, 0) + 1
    return sent
