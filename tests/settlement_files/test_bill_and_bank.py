"""An acquirer's .xlsx merchant bill (title row, 合计 row) through the example
map, and the bank-statement check: one payout missing, one short (§7.10)."""

import datetime
import json
import os

import openpyxl

from dztest import reconcile as sc
from dztest import settlement_samples as ss

HERE = os.path.dirname(os.path.abspath(__file__))
MAPS = os.path.join(HERE, "..", "..", "examples", "maps")
BILL_HEADER = ["商户号", "门店名称", "终端号", "交易日期", "交易时间", "交易类型", "交易批次号", "凭证号",
               "参考号", "卡号", "卡类别", "交易金额", "手续费", "结算金额", "交易单号", "订单号", "支付方式"]


def bill_xlsx(path):
    book = openpyxl.Workbook()
    ws = book.active
    ws.append(["某某支付 商户交易明细（2027-01-04）"])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(BILL_HEADER))
    ws.append(BILL_HEADER)
    total = 0
    for i, r in enumerate(ss.logical_rows()):
        qr = r["id"] in ("S04", "S05")
        refund = r["kind"] == "refund"
        fee = abs(r["fee"]) if not refund else 1.10
        ws.append([sc.MERCHANT, "老王面馆", r["terminal"],
                   datetime.datetime(2027, 1, 4), r["time"][11:19],
                   ("微信退款" if qr else "退货") if refund else ("微信消费" if qr else "消费"),
                   "000001", "%06d" % (i + 1), "" if qr else r["rrn"],
                   "*" if qr else "622202******%04d" % i, "借记卡", r["amount"] / 100.0,
                   (abs(r["fee"]) / 100.0) if not refund else fee,
                   abs(r["net"]) / 100.0, "T%020d" % i, r["order"], "微信" if qr else "银行卡"])
        total += r["amount"]
    ws.append(["合计", "", "", "", "", "", "", "", "", "", "", total / 100.0])
    book.save(path)


def test_xlsx_merchant_bill_through_the_example_map(run_main, tmp_path):
    journal, pub, _ = sc.write_journal(str(tmp_path))
    path = tmp_path / "商户交易明细_20270105.xlsx"
    bill_xlsx(path)
    code, out = run_main("reconcile", "--journal", journal, "--pubkey", pub, "--settlement",
                         str(path), "--profile", sc.PROFILE, "--as-of", sc.AS_OF, "--json",
                         "--map", os.path.join(MAPS, "acquirer-bill.toml"))
    summary = json.loads(out.splitlines()[-1])
    f = summary["settlement_file"]
    assert f["bad_rows"] == [] and f["skipped"] == 2          # the title and 合计 rows
    assert summary["counts"] == ss.EXPECTED
    by_id = dict((t["pos_txn_id"], t) for t in summary["transactions"])
    assert by_id["RF1"]["status"] == "ok" and by_id["RF1"]["settled_amount"] == -19890
    assert by_id["S04"]["status"] == "ok"                      # a QR row: by order number
    assert by_id["S08"]["shortfall"] == 500


def test_xls_merchant_bill_through_the_same_map(run_main, tmp_path):
    """The same bill as .xls (BIFF8, what older portals export), read by xlrd."""
    import xlwt
    journal, pub, _ = sc.write_journal(str(tmp_path))
    xlsx = tmp_path / "b.xlsx"
    bill_xlsx(xlsx)
    book = xlwt.Workbook()
    sheet = book.add_sheet("明细")
    date_style = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    for r, values in enumerate(openpyxl.load_workbook(xlsx).active.iter_rows(values_only=True)):
        for c, value in enumerate(values):
            if value is not None:
                sheet.write(r, c, value, date_style if isinstance(value, datetime.datetime)
                            else xlwt.Style.default_style)
    path = tmp_path / "商户交易明细_20270105.xls"
    book.save(str(path))
    mapping = tmp_path / "bill-xls.toml"
    text = open(os.path.join(MAPS, "acquirer-bill.toml"), encoding="utf-8").read()
    mapping.write_text(text.replace('type = "xlsx"', 'type = "xls"'), encoding="utf-8")
    _code, out = run_main("reconcile", "--journal", journal, "--pubkey", pub, "--settlement",
                          str(path), "--profile", sc.PROFILE, "--as-of", sc.AS_OF, "--json",
                          "--map", str(mapping))
    summary = json.loads(out.splitlines()[-1])
    assert summary["settlement_file"]["bad_rows"] == []
    assert summary["counts"] == ss.EXPECTED


def scenario_days():
    days = {}
    for row in sc.scenario_rows():
        days[row["settled_at"][:10]] = days.get(row["settled_at"][:10], 0) + row["settled_amount"]
    return days


def bank_csv(path, lines):
    text = ["中国某某银行 账户交易明细", "账号：6217000010012345678,户名：老王面馆", "",
            "交易日期,交易时间,借方发生额,贷方发生额,余额,对方户名,摘要"]
    text += lines + ["合计,,120.00,%s,,," % "0.00"]
    path.write_bytes(("\r\n".join(text) + "\r\n").encode("gbk"))


def test_bank_statement_one_missing_and_one_short_payout(run_main, tmp_path):
    journal, pub, _ = sc.write_journal(str(tmp_path))
    settlement = tmp_path / "settlement.csv"
    settlement.write_text(sc.csv_text(sc.scenario_rows()), encoding="utf-8")
    days = scenario_days()
    assert sorted(days) == ["2027-01-05", "2027-01-06"]
    short = days["2027-01-05"] - 1000
    statement = tmp_path / "账户明细.csv"
    bank_csv(statement, [
        "2027-01-05,09:00:00,120.00,,1000.00,某某超市,消费",                  # a debit
        "2027-01-06,08:30:00,,%s,,银联商务有限公司,清算款 20270105" % ss.yuan(short),
        "2027-01-06,12:00:00,,%s,,张三,转账" % ss.yuan(days["2027-01-06"]),  # not the acquirer
    ])
    html = tmp_path / "r.html"
    code, out = run_main("reconcile", "--journal", journal, "--pubkey", pub, "--settlement",
                         str(settlement), "--profile", sc.PROFILE, "--as-of", sc.AS_OF, "--json",
                         "--bank", str(statement), "--bank-map",
                         os.path.join(MAPS, "bank-statement.toml"), "--out", str(html), "--lang", "en")
    summary = json.loads(out.splitlines()[-1])
    payouts = summary["payouts"]
    assert payouts["bank"]["credits"] == 1 and payouts["bank"]["bad_rows"] == []
    assert payouts["counts"] == {"ok": 0, "deposit_missing": 1, "deposit_short": 1}
    by_day = dict((p["day"], p) for p in payouts["days"])
    first, second = by_day["2027-01-05"], by_day["2027-01-06"]
    assert (first["status"], first["expected"], first["received"], first["difference"]) == (
        "deposit_short", days["2027-01-05"], short, 1000)
    assert first["bank_line"] == 6 and "S02" in first["sales"]
    assert (second["status"], second["expected"], second["received"]) == (
        "deposit_missing", days["2027-01-06"], None)
    assert sorted(second["sales"]) == ["S06", "S07", "S18"]
    assert code == 1 and "1 payout missing at the bank" in summary["verdict"]
    page = html.read_text(encoding="utf-8")
    assert 'id="payouts"' in page and "MISSING at the bank" in page and "S06" in page


def test_bank_statement_all_arrived(run_main, tmp_path):
    journal, pub, _ = sc.write_journal(str(tmp_path))
    settlement = tmp_path / "settlement.csv"
    settlement.write_text(sc.csv_text(sc.scenario_rows()), encoding="utf-8")
    days = scenario_days()
    statement = tmp_path / "s.csv"
    bank_csv(statement, ["2027-01-%s,08:30:00,,%s,,银联商务,清算款" % (d[8:], ss.yuan(v))
                         for d, v in sorted(days.items())])
    _code, out = run_main("reconcile", "--journal", journal, "--pubkey", pub, "--settlement",
                          str(settlement), "--profile", sc.PROFILE, "--as-of", sc.AS_OF, "--json",
                          "--bank", str(statement), "--bank-map",
                          os.path.join(MAPS, "bank-statement.toml"))
    payouts = json.loads(out.splitlines()[-1])["payouts"]
    assert payouts["counts"] == {"ok": 2, "deposit_missing": 0, "deposit_short": 0}
