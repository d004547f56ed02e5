"""Settlement files laid out as the public specifications describe them,
built from one scenario over the reconcile journal (dztest/reconcile.py).

Independent of the reader: the widths, headers and sign rules below are
copied from the sources (research/settlement-formats.md, SPEC §7.9.4), not
imported from settlement_files/.

The scenario (every format): S01-S05 settle right; RF1 refunds S01; S08
settles 500 fen short; S10 clears under MCC 5411 (formats that carry MCC);
one row matches no sale; S06, S07, S09, S11-S14 and S18 never arrive; S15
is pending; S16/S17 are voided.  Settlement date 2027-01-05 (file names).
"""

import csv
import gzip
import io

from dztest import reconcile as sc

SETTLE_DAY = "2027-01-05"
FULL_PAN = "6222021234567894"           # Luhn-valid UnionPay test number


def logical_rows():
    """One dict per row: pos id, kind, |amount|, fee, net, mcc, rrn, terminal."""
    by_id = dict((t["pos_txn_id"], t) for t in sc.scenario_transactions())
    rows = []
    for name in ("S01", "S02", "S03", "S04", "S05", "S08", "S10", "RF1", "UNK"):
        t = by_id.get(name, by_id["S02"])
        refund = name == "RF1"
        amount = t["amount"] - (500 if name == "S08" else 0)
        fee = -110 if refund else sc.FEE
        r = {"id": name if name != "UNK" else "X-404", "kind": "refund" if refund else "sale",
             "amount": amount, "fee": fee, "net": amount - fee, "mcc": "5411" if name == "S10"
             else "5812", "rrn": t["rrn"] if name != "UNK" else "R77777777777",
             "auth": t["auth_code"] if name != "UNK" else "Z99999", "terminal": sc.TERMINAL,
             "time": t["time"],
             "order": t.get("original_pos_txn_id", name) if name != "UNK" else "X-404",
             "ref": "42000%023d" % len(rows)}
        if refund:
            r["net"] = -(amount + fee)          # money back out, the fee returned
        rows.append(r)
    return rows


EXPECTED = {"ok": 7, "not_arrived": 8, "late": 0, "short": 1, "over_fee": 0, "mcc_jump": 0,
            "region_jump": 0, "unknown_settlement": 1, "duplicate_settlement": 0}
EXPECTED_MCC = dict(EXPECTED, ok=6, mcc_jump=1)


def yuan(fen):
    sign = "-" if fen < 0 else ""
    return "%s%d.%02d" % (sign, abs(fen) // 100, abs(fen) % 100)


def mmddhhmmss(rfc3339):
    return rfc3339[5:7] + rfc3339[8:10] + rfc3339[11:13] + rfc3339[14:16] + rfc3339[17:19]


def wall(rfc3339):
    return rfc3339[:10] + " " + rfc3339[11:19]


# -- UnionPay ZM: 42 fields in GBK bytes, a separator byte after each ---------

ZM_WIDTHS = [3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2, 2, 6, 2, 4,
             32, 1, 21, 15, 1, 15, 32, 13, 13, 8, 32, 13, 13, 12, 2, 1, 32, 98]


def fixed(fields, widths):
    out = []
    for text, width in zip(fields, widths):
        data = text.encode("gbk")
        assert len(data) <= width, (text, width)
        out.append(data + b" " * (width - len(data)))
    return b" ".join(out)


def zm_bytes(rows=None):
    lines = []
    for r in rows or logical_rows():
        f = [""] * len(ZM_WIDTHS)
        f[0] = "S30" if r["kind"] == "refund" else "S22"
        f[3] = "%06d" % (len(lines) + 1)
        f[4] = mmddhhmmss(r["time"])
        f[5] = "622202******0001"
        f[6] = "%012d" % r["amount"]
        f[7] = r["mcc"]
        f[9] = r["ref"][-21:]
        f[11] = r["order"]
        f[15] = ("C" if r["fee"] < 0 else "D") + "%012d" % abs(r["fee"])
        f[16] = ("C" if r["net"] >= 0 else "D") + "%012d" % abs(r["net"])
        f[27] = sc.MERCHANT
        f[30] = "老王面馆"                          # 二级商户简称: Chinese inside
        f[32] = ("C" if r["net"] >= 0 else "D") + "%012d" % abs(r["net"])
        f[33] = r["terminal"]
        f[34] = "备注：午餐"                        # 商户自定义域
        lines.append(fixed(f, ZM_WIDTHS))
    return b"\r\n".join(lines) + b"\r\n"


ZM_NAME = "INN27010588ZM_" + sc.MERCHANT

# -- UnionPay ACOM: 34 fields, full card numbers ------------------------------

ACOM_WIDTHS = [11, 11, 6, 10, 19, 12, 12, 12, 4, 6, 4, 8, 15, 12, 2, 6, 11, 6, 2, 3, 12, 12, 12,
               1, 3, 1, 1, 10, 11, 1, 2, 2, 12, 14]


def acom_bytes(rows=None):
    lines = []
    for i, r in enumerate(rows or logical_rows()):
        f = [""] * len(ACOM_WIDTHS)
        f[0], f[1], f[2] = "48021000", "48021000", "%06d" % (i + 1)
        f[3] = mmddhhmmss(r["time"])
        f[4] = FULL_PAN
        f[5] = "%012d" % r["amount"]
        f[8], f[9] = ("0220", "200000") if r["kind"] == "refund" else ("0200", "000000")
        f[10] = r["mcc"]
        f[11] = r["terminal"]
        f[12] = sc.MERCHANT
        f[13] = r["rrn"]
        f[15] = r["auth"]
        lines.append(fixed(f, ACOM_WIDTHS))
    return b"\n".join(lines) + b"\n"


ACOM_NAME = "IND27010532ACOMA"

# -- WeChat Pay trade bill ----------------------------------------------------

WECHAT_HEADER = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
                 "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
                 "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,"
                 "费率备注")


def wechat_bytes(rows=None):
    out = ["\ufeff" + WECHAT_HEADER]
    for r in rows or logical_rows():
        refund = r["kind"] == "refund"
        values = [wall(r["time"]), "wx2421b1c4370ec43b", "1900000109", "1900000110",
                  r["terminal"], r["ref"], r["order"], "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "MICROPAY",
                  "REFUND" if refund else "SUCCESS", "CMB_DEBIT", "CNY",
                  "0.00" if refund else yuan(r["amount"]), "0.00",
                  "50000" + r["ref"][5:] if refund else "0", "RF-" + r["order"] if refund else "0",
                  yuan(r["amount"]) if refund else "0.00", "0.00", "ORIGINAL" if refund else "",
                  "SUCCESS" if refund else "", "面条", "", "%.5f" % (r["fee"] / 100.0 - (0.00004 if r["fee"] > 0 else -0.00004)),
                  "0.55%", yuan(r["amount"]), yuan(r["amount"]) if refund else "0.00", ""]
        out.append(",".join("`" + v for v in values))
    out.append("总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额")
    out.append("`9,`7995.00,`200.00,`0.00,`43.90000,`8195.00,`200.00")
    return ("\r\n".join(out) + "\r\n").encode("utf-8")


WECHAT_NAME = "1900000109All%s.csv" % SETTLE_DAY

# -- Alipay 业务明细 -----------------------------------------------------------

ALIPAY_HEADER = ("支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,"
                 "对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,"
                 "商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,"
                 "退款批次号/请求号,服务费（元）,分润（元）,备注")


def alipay_bytes(rows=None):
    out = ["#支付宝业务明细查询", "#账号：[20885212319120680156]",
           "#起始日期：[2027年01月04日 00:00:00]   终止日期：[2027年01月05日 00:00:00]",
           "#-----------------------------------------业务明细列表----------------------------------------",
           ALIPAY_HEADER]
    for r in rows or logical_rows():
        refund = r["kind"] == "refund"
        amount = -r["amount"] if refund else r["amount"]
        values = [r["ref"] + "\t", r["order"] + "\t", "退款" if refund else "交易", "面条",
                  wall(r["time"]), wall(r["time"]), "", "", "", r["terminal"] + "\t",
                  "ali***@example.com", yuan(amount), yuan(amount), "0.00", "0.00", "0.00",
                  "0.00", "0.00", "", "0.00", "0.00", ("RF" + r["ref"][-6:]) if refund else "",
                  yuan(-r["fee"]), "0.00", ""]
        out.append(",".join(values))
    out += ["#-----------------------------------------业务明细列表结束------------------------------------",
            "#交易合计：8笔，商家实收共7995.00元，商家优惠共0.00元",
            "#退款合计：1笔，商家实收退款共-200.00元，商家优惠退款共0.00元",
            "#导出时间：[2027年01月05日 05:46:49]"]
    return ("\r\n".join(out) + "\r\n").encode("gbk")


ALIPAY_NAME = "20885212319120680156_20270105_业务明细.csv"

# -- Stripe itemized payout reconciliation ------------------------------------

STRIPE_COLUMNS = ("automatic_payout_id", "automatic_payout_effective_at_utc",
                  "balance_transaction_id", "created_utc", "currency", "gross", "fee", "net",
                  "reporting_category", "description", "order_id", "payment_method_type")


def _csv(columns, rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(columns)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def stripe_bytes(rows=None):
    out = []
    for i, r in enumerate(rows or logical_rows()):
        refund = r["kind"] == "refund"
        gross = -r["amount"] if refund else r["amount"]
        out.append(["po_1", "2027-01-04 16:00:00", "txn_%04d" % i, wall(r["time"]), "cny",
                    yuan(gross), yuan(r["fee"]), yuan(r["net"]),
                    "refund" if refund else "charge", "", r["order"], "card_present"])
    out.append(["po_1", "2027-01-04 16:00:00", "txn_fee1", "2027-01-04 12:00:00", "cny",
                "-15.00", "0.00", "-15.00", "fee", "Terminal rental", "", ""])
    return _csv(STRIPE_COLUMNS, out)


# -- Adyen settlement details report ------------------------------------------

ADYEN_COLUMNS = ("Company Account", "Merchant Account", "Psp Reference", "Merchant Reference",
                 "Payment Method", "Creation Date", "TimeZone", "Type", "Modification Reference",
                 "Gross Currency", "Gross Debit (GC)", "Gross Credit (GC)", "Exchange Rate",
                 "Net Currency", "Net Debit (NC)", "Net Credit (NC)", "Commission (NC)",
                 "Markup (NC)", "Scheme Fees (NC)", "Interchange (NC)", "Payment Method Variant",
                 "Modification Merchant Reference", "Batch Number")


def adyen_bytes(rows=None):
    out = []
    for i, r in enumerate(rows or logical_rows()):
        refund = r["kind"] == "refund"
        fee = r["fee"]
        parts = [fee // 4, fee // 4, fee // 4, fee - 3 * (fee // 4)]
        gross = yuan(r["amount"])
        out.append(["Shop", "ShopCNY", "88%014d" % i, r["order"], "cup",
                    "2027-01-04 %s" % r["time"][11:19], "CET",
                    "Refunded" if refund else "Settled", "MR%06d" % i, "CNY",
                    gross if refund else "", "" if refund else gross, "1", "CNY",
                    yuan(-r["net"]) if refund else "", "" if refund else yuan(r["net"])]
                   + [yuan(p) for p in parts] + ["cup", "", "7"])
    out.append(["Shop", "ShopCNY", "", "", "", "2027-01-04 23:00:00", "CET", "Fee", "FEE1",
                "CNY", "", "", "", "CNY", "15.00", "", "", "", "", "", "", "", "7"])
    return _csv(ADYEN_COLUMNS, out)


def gzipped(data):
    return gzip.compress(data)
