"""Helpers for the settlement end-to-end tests (tests/settlement_e2e/):
backdated sales, settlement CSV text, the agent's alerts.json, journal
records by type, and settlement acks built by hand (genuine or forged)."""

import json
import itertools
import os

from daozhang.agent.core.journal import record
from daozhang.agent.core.sync import settlement_ack
from dztest.agent_daemon import read_records, sale
from dztest.dates import CST, DAY_MS, now_ms, rfc3339  # noqa: F401 (re-exported for the tests)
from dztest.sync_world import wait_for
HEADER = ("acquirer_ref,merchant_id,terminal_id,rrn,auth_code,txn_time,kind,card,amount,fee,"
          "settled_amount,settled_at,mcc,region")


def backdated_sale(pos_txn_id, rrn, days_ago=10, amount=10000, **extra):
    """A T1 sale `days_ago` days before now: past its deadline whatever the
    weekday or the profile's holidays (examples/merchant.toml)."""
    return sale(pos_txn_id, amount=amount, rrn=rrn, auth_code="A" + rrn[-5:],
                time=rfc3339(now_ms() - days_ago * DAY_MS), **extra)


def csv_row(ref, txn, fee=55, settled_at=None, mcc="5812", region="2900", rrn=None):
    """A settlement CSV line for `txn` (a sale dict), correct unless told."""
    settled_at = now_ms() - DAY_MS if settled_at is None else settled_at
    amount = txn["amount"]
    return ",".join([ref, txn["merchant_id"], txn["terminal_id"], rrn or txn["rrn"],
                     txn["auth_code"], txn["time"], "sale", txn["card"], str(amount), str(fee),
                     str(amount - fee), rfc3339(settled_at), mcc, region])


def write_csv(path, lines):
    with open(path, "w") as f:
        f.write("\n".join([HEADER] + list(lines)) + "\n")
    return path


def alerts_json(config):
    path = os.path.join(os.path.dirname(config), "alerts.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return {"alerts": [], "summary": {}}


def alert_state(config, kind, key=None):
    """The state of an alert in the agent's alerts.json, or None."""
    for a in alerts_json(config)["alerts"]:
        if a["kind"] == kind and (key is None or a["key"] == key):
            return a["state"]
    return None


def wait_alert(config, kind, state, key=None, timeout=30):
    wait_for(lambda: alert_state(config, kind, key) == state, timeout,
             "alert %s/%s %s (have %s)" % (kind, key, state,
                                          [(a["kind"], a["key"], a["state"])
                                           for a in alerts_json(config)["alerts"]]))


def journal_records(config, rtype):
    base = os.path.dirname(config)
    recs = read_records(os.path.join(base, "journal.dzj"), os.path.join(base, "device.key"))
    return [r for r in recs if r.type == rtype]


def settlement_records(config):
    return journal_records(config, record.TYPE_SETTLEMENT_ACK)


_DELIVERY_NUMBERS = itertools.count(1)


def make_ack(signer, dev, row, ack_id=None, seq=None, at=None, n=None):
    """A settlement ack signed by `signer` (an AckSigner: genuine or forged);
    `n` its delivery number (SPEC 7.8.7; default: the next of this process)."""
    return settlement_ack.encode(dev, ack_id or os.urandom(16), at or now_ms(), seq,
                                 settlement_ack.wire_row(row), signer.kid, signer.signer.sign,
                                 n or next(_DELIVERY_NUMBERS))


def plain_row(ref, rrn, amount=10000, fee=55):
    return {"acquirer_ref": ref, "merchant_id": "102290058120001", "terminal_id": "SH000001",
            "rrn": rrn, "auth_code": None, "txn_time": None, "kind": "sale", "amount": amount,
            "fee": fee, "settled_amount": amount - fee, "settled_at": now_ms() - DAY_MS,
            "mcc": "5812", "region": "2900"}


def stored_receipts(store, device_id, payloads):
    """Store transaction records in a backend store as the ingest path
    would (payload JSON), for a Settler to match."""
    import hashlib
    from dztest.sync import signer
    store.add_device(device_id, signer(7).public_bytes)
    prev = None
    records = []
    for seq, payload in enumerate(payloads):
        h = hashlib.sha256(b"%s-%d" % (device_id.encode(), seq)).digest()
        records.append({"seq": seq, "type": 1, "hash": h, "prev_hash": prev,
                        "frame": b"f", "payload": payload})
        prev = h
    store.store_batch(device_id, records)


def csv_text(rows):
    """Settlement rows as our CSV layout (HEADER)."""
    lines = [HEADER]
    for r in rows:
        lines.append(",".join(str(r.get(k, "")) for k in HEADER.split(",")))
    return "\n".join(lines) + "\n"
