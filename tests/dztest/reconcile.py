"""Test helpers for `daozhang reconcile`: a real signed journal and a
settlement CSV with a known number of every discrepancy.

The week (Asia/Shanghai, examples/merchant.toml: T1, cut-off 23:00, debit
0.55 % capped at ¥20, tolerance 1 fen, MCC 5812, region 2900): sales on
Monday 2027-01-04, due Tuesday 23:00; one sale on Wednesday, still pending
at AS_OF (Wednesday 12:00).  Every sale is ¥1,000.00 debit: fee 550, net
99,450.  EXPECTED_COUNTS / EXPECTED_TOTALS are worked out by hand below.
"""

import csv
import io
import os
import struct
import zlib

from daozhang.agent.core.intake.txn import validate
from daozhang.agent.journal_file import JournalFile, create_journal
from daozhang.signing import generate_keypair, load_signer

HERE = os.path.dirname(os.path.abspath(__file__))
PROFILE = os.path.join(HERE, "..", "..", "examples", "merchant.toml")
MERCHANT = "102290058120001"
TERMINAL = "SH000001"
AS_OF = "2027-01-06T12:00:00+08:00"
MONDAY = "2027-01-04T%s+08:00"
AMOUNT, FEE, NET = 100000, 550, 99450
REFUND = 20000
COLUMNS = ("acquirer_ref", "merchant_id", "terminal_id", "rrn", "auth_code", "txn_time", "kind",
           "card", "amount", "fee", "settled_amount", "settled_at", "mcc", "region")

# pos_txn_id -> what the acquirer does with it
SALES = ["S%02d" % i for i in range(1, 19)]
EXPECTED_COUNTS = {"ok": 6, "not_arrived": 2, "late": 3, "short": 1, "over_fee": 1,
                   "mcc_jump": 2, "region_jump": 1, "unknown_settlement": 2,
                   "duplicate_settlement": 1}
EXPECTED_OTHER = {"pending": 1, "cancelled": 3, "cancelled_settled": 1}
# gross: 16 sales expecting money, less the refund.  expected_net: 16 nets
# less the refund (a refund's contracted fee is 0).  settled: first
# settlements (S08 500 short, S09 fee 1000 so 99,000).  missing: two never
# arrived (net each) plus S08's 500.
EXPECTED_TOTALS = {"gross": 16 * AMOUNT - REFUND, "expected_net": 16 * NET - REFUND,
                   "settled": 5 * NET + 2 * NET + (NET - 500) + 99000 + 4 * NET - REFUND,
                   "missing": 2 * NET + 500}


def txn(pos_txn_id, when, kind="sale", amount=AMOUNT, n=0, **more):
    t = {"kind": kind, "pos_txn_id": pos_txn_id, "time": when, "amount": amount,
         "currency": "CNY", "card": "6222 02XX XXXX %04d" % n, "card_type": "debit",
         "auth_code": "A%05d" % n, "rrn": "R%011d" % n, "merchant_id": MERCHANT,
         "terminal_id": TERMINAL, "mcc": "5812", "settlement": "T1"}
    t.update(more)
    return validate(t)


def scenario_transactions():
    """The journal's transactions, in order (valid per txn.validate)."""
    out = []
    for i, name in enumerate(SALES, 1):
        when = MONDAY % ("10:%02d:00" % i)
        if name == "S15":
            when = "2027-01-06T11:00:00+08:00"       # Wednesday: pending at AS_OF
        out.append(txn(name, when, n=i))
    out.append(txn("RF1", MONDAY % "15:00:00", kind="refund", amount=REFUND, n=90,
                   original_pos_txn_id="S01"))
    out.append(txn("V16", MONDAY % "10:30:00", kind="void", n=91, original_pos_txn_id="S16"))
    out.append(txn("V17", MONDAY % "10:31:00", kind="void", n=92, original_pos_txn_id="S17"))
    return out


def write_journal(directory, transactions=None):
    """(journal path, pubkey path, {pos_txn_id: seq}) built with the real writer."""
    prefix = os.path.join(directory, "device")
    generate_keypair(prefix)
    path = os.path.join(directory, "journal.dzj")
    create_journal(path, "shop-001", size=4096 + 4 * 65536)
    seqs = {}
    with JournalFile.open(path, load_signer(prefix + ".key")) as journal:
        for t in transactions or scenario_transactions():
            seqs[t["pos_txn_id"]] = journal.append(1, t).seq
    return path, prefix + ".pub", seqs


def row_for(t, ref, settled_at="2027-01-05T22:00:00+08:00", fee=None, settled=None, **more):
    refund = t["kind"] == "refund"
    fee = (0 if refund else FEE) if fee is None else fee
    amount = -t["amount"] if refund else t["amount"]
    r = {"acquirer_ref": ref, "merchant_id": MERCHANT, "terminal_id": TERMINAL, "rrn": t["rrn"],
         "auth_code": t["auth_code"], "txn_time": t["time"], "kind": t["kind"],
         "card": t["card"], "amount": amount, "fee": fee,
         "settled_amount": amount - fee if settled is None else settled,
         "settled_at": settled_at, "mcc": "5812", "region": "2900"}
    r.update(more)
    return r


def scenario_rows():
    """The acquirer's rows, one discrepancy of every kind (see EXPECTED_*)."""
    by_id = dict((t["pos_txn_id"], t) for t in scenario_transactions())
    late = "2027-01-06T10:00:00+08:00"
    rows = [row_for(by_id["S%02d" % i], "OK%d" % i) for i in range(1, 5)]
    rows.append(row_for(by_id["S05"], "OK5", rrn=""))              # matched by auth code
    rows.append(row_for(by_id["RF1"], "REF1"))
    rows.append(row_for(by_id["S06"], "LATE6", settled_at=late))
    rows.append(row_for(by_id["S07"], "LATE7", settled_at=late))
    rows.append(row_for(by_id["S08"], "SHORT8", settled=NET - 500))
    rows.append(row_for(by_id["S09"], "FEE9", fee=1000))
    rows.append(row_for(by_id["S10"], "MCC10", mcc="5411"))
    rows.append(row_for(by_id["S11"], "REG11", region="1000"))
    rows.append(row_for(by_id["S12"], "DUP12a"))
    rows.append(row_for(by_id["S12"], "DUP12b", settled_at="2027-01-05T22:30:00+08:00"))
    rows.append(row_for(by_id["S18"], "LATEMCC18", settled_at=late, mcc="5411"))
    rows.append(row_for(by_id["S17"], "VOIDED17"))                  # cancelled_settled
    # S13, S14: never arrive.  S15: pending.  S16: voided, nothing comes.
    rows.append(row_for(by_id["S01"], "UNK1", rrn="R99999999999", auth_code="Z99999",
                        terminal_id="<b>T9</b>"))
    rows.append(row_for(by_id["S02"], "<script>alert(1)</script>", rrn="R88888888888",
                        auth_code="Z88888", amount=4321, settled=4321 - FEE))
    return rows


def csv_text(rows, columns=COLUMNS):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow(["" if r.get(c) is None else r[c] for c in columns])
    return buf.getvalue()


def tamper_amount(path, offset, old, new):
    """Change a transaction's amount in place and fix the frame CRC (SPEC 3.3),
    as an attacker with file access but without the device key would."""
    with open(path, "r+b") as f:
        f.seek(offset)
        head = f.read(8)
        n = struct.unpack(">I", head[4:8])[0]
        body = f.read(n)
        old_cbor, new_cbor = b"\x1a" + struct.pack(">I", old), b"\x1a" + struct.pack(">I", new)
        if body.count(old_cbor) != 1:
            raise ValueError("amount %d not found once in the record" % old)
        body = body.replace(old_cbor, new_cbor)
        f.seek(offset + 8)
        f.write(body + struct.pack(">I", zlib.crc32(head + body) & 0xFFFFFFFF))
