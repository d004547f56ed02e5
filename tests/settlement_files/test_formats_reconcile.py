"""Each built-in format, laid out as its public spec describes it, reconciles
to exactly the expected counts through `daozhang reconcile --format auto`
(SPEC §7.9.4): refunds, a fee line, a short settlement, an MCC jump where the
format carries MCC, banners/footers, Chinese text inside fixed-width fields."""

import json

import pytest

from dztest import reconcile as sc
from dztest import settlement_samples as ss

CASES = [
    ("unionpay-zm", ss.ZM_NAME, ss.zm_bytes, ss.EXPECTED_MCC),
    ("unionpay-acom", ss.ACOM_NAME, ss.acom_bytes, ss.EXPECTED_MCC),
    ("wechatpay", ss.WECHAT_NAME, ss.wechat_bytes, ss.EXPECTED),
    ("alipay", ss.ALIPAY_NAME, ss.alipay_bytes, ss.EXPECTED),
    ("stripe", "payout_reconciliation_itemized.csv", ss.stripe_bytes, ss.EXPECTED),
    ("adyen", "settlement_detail_report_batch_7_20270105.csv", ss.adyen_bytes, ss.EXPECTED),
]


@pytest.fixture(scope="module")
def journal(tmp_path_factory):
    d = tmp_path_factory.mktemp("formats")
    path, pub, _ = sc.write_journal(str(d))
    return {"dir": d, "journal": path, "pub": pub}


def reconcile(run_main, journal, path, *more):
    code, out = run_main("reconcile", "--journal", journal["journal"], "--pubkey", journal["pub"],
                         "--settlement", str(path), "--profile", sc.PROFILE, "--as-of", sc.AS_OF,
                         "--json", *more)
    return code, json.loads(out.splitlines()[-1]) if out.strip().startswith("{") else out


@pytest.mark.parametrize("fmt, name, build, expected", CASES, ids=[c[0] for c in CASES])
def test_format_reconciles_to_exact_counts(run_main, journal, tmp_path, fmt, name, build,
                                           expected):
    path = tmp_path / name
    path.write_bytes(build())
    code, summary = reconcile(run_main, journal, path)
    assert code == 1, summary
    f = summary["settlement_file"]
    assert f["format"] == fmt
    assert f["bad_rows"] == [] and f["card_masked"] == 0
    assert summary["counts"] == expected
    by_id = dict((t["pos_txn_id"], t) for t in summary["transactions"])
    assert by_id["S08"]["checks"] == ["short"] and by_id["S08"]["shortfall"] == 500
    assert by_id["RF1"]["status"] == "ok" and by_id["RF1"]["settled_amount"] < 0
    if expected["mcc_jump"]:
        assert by_id["S10"]["checks"] == ["mcc_jump"] and by_id["S10"]["mcc"] == "5411"
    assert ss.FULL_PAN not in json.dumps(summary)


@pytest.mark.parametrize("fmt, name, build, expected", CASES, ids=[c[0] for c in CASES])
def test_explicit_format_and_gzip_wrapper(run_main, journal, tmp_path, fmt, name, build,
                                          expected):
    path = tmp_path / (name + ".gz")
    path.write_bytes(ss.gzipped(build()))
    code, summary = reconcile(run_main, journal, path, "--format", fmt)
    assert summary["counts"] == expected


def test_auto_says_which_format_it_chose(run_main, journal, tmp_path):
    path = tmp_path / ss.WECHAT_NAME
    path.write_bytes(ss.wechat_bytes())
    code, out = run_main("reconcile", "--journal", journal["journal"], "--pubkey", journal["pub"],
                         "--settlement", str(path), "--profile", sc.PROFILE, "--as-of", sc.AS_OF)
    assert "read as wechatpay (the header starts 交易时间,公众账号ID)" in out
    assert "ok 7, not_arrived 8" in out


def test_fee_lines_are_counted_not_settled(run_main, journal, tmp_path):
    path = tmp_path / "payout_reconciliation_itemized.csv"
    path.write_bytes(ss.stripe_bytes())
    _code, summary = reconcile(run_main, journal, path)
    assert summary["settlement_file"]["other_lines"] == {"fee": 1}
    assert summary["settlement_file"]["rows"] == 9


def test_footers_and_summaries_are_skipped_not_bad(run_main, journal, tmp_path):
    for name, build, skipped in ((ss.WECHAT_NAME, ss.wechat_bytes, 1),
                                 (ss.ALIPAY_NAME, ss.alipay_bytes, 8)):
        path = tmp_path / name
        path.write_bytes(build())
        _code, summary = reconcile(run_main, journal, path)
        assert summary["settlement_file"]["skipped"] == skipped, name
        assert summary["settlement_file"]["bad_rows"] == []


def test_acom_full_card_numbers_never_leave_the_reader(run_main, journal, tmp_path):
    path = tmp_path / ss.ACOM_NAME
    path.write_bytes(ss.acom_bytes())
    out_html = tmp_path / "report.html"
    _code, summary = reconcile(run_main, journal, path, "--out", str(out_html))
    assert ss.FULL_PAN not in json.dumps(summary)
    assert ss.FULL_PAN not in out_html.read_text(encoding="utf-8")
    unknown = summary["unknown_settlements"][0]
    assert unknown["card"] == "622202******7894"


def test_zm_year_comes_from_the_file_name_with_the_january_rollover(tmp_path):
    from daozhang.settlement_files import open_settlement
    rows = ss.logical_rows()[:1]
    rows[0]["time"] = "2026-12-31T23:59:58+08:00"
    stream = open_settlement(ss.zm_bytes(rows), "unionpay-zm", name="INN27010188ZM_" + sc.MERCHANT)
    row = list(stream.rows())[0]
    assert row["txn_time"] == 1798732798000       # 2026-12-31T23:59:58+08:00
    assert row["settled_at"] == 1798732800000     # 2027-01-01T00:00:00+08:00


def test_trace_batch_terminal_and_qr_sales_match(tmp_path):
    """Rule 3 (terminal + batch + trace) for a card sale the bill shows
    without its RRN, and a QR sale (no card, RRN or auth code) by order number."""
    from daozhang.agent.core.intake.txn import validate
    from daozhang.host_tools.reconcile.run import run_ledger
    from daozhang.agent.core.business_calendar import BusinessCalendar
    from daozhang.profile import load_profile
    from daozhang.timezone import timezone_for
    card = sc.txn("C1", sc.MONDAY % "10:00:00", n=1, trace_no="000123", batch_no="000007")
    qr = validate({"kind": "sale", "pos_txn_id": "WX-20270104-0123", "time":
                   sc.MONDAY % "10:05:00", "amount": 5000, "currency": "CNY", "card_type": "debit",
                   "merchant_id": sc.MERCHANT, "terminal_id": sc.TERMINAL, "mcc": "5812",
                   "settlement": "T1", "channel": "wechat"})
    for i, t in enumerate((card, qr)):
        t["seq"] = i
    base = {"merchant_id": sc.MERCHANT, "terminal_id": sc.TERMINAL, "kind": "sale",
            "settled_at": 1799157600000, "txn_time": None, "rrn": None, "auth_code": None}
    rows = [dict(base, acquirer_ref="B1", trace_no="000123", batch_no="000007", amount=100000,
                 fee=550, settled_amount=99450),
            dict(base, acquirer_ref="B2", order_id="WX-20270104-0123", amount=5000,
                 fee=28, settled_amount=4972)]
    profile = load_profile(sc.PROFILE)
    tz = timezone_for(profile["timezone"])
    _ledger, summary, refused = run_ledger(profile, BusinessCalendar.from_profile(profile, tz),
                                           [card, qr], rows, 1799208000000)
    assert refused == [] and summary["counts"]["unknown_settlement"] == 0
    assert [t["status"] for t in summary["transactions"]] == ["ok", "ok"]


def test_alipay_zip_with_its_summary_file_reads_the_details(run_main, journal, tmp_path):
    """The bill-download zip holds 业务明细 and 业务明细(汇总): the details are read."""
    import zipfile
    path = tmp_path / "20885212319120680156_20270105.csv.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("20885212319120680156_20270105_业务明细(汇总).csv",
                   "#支付宝业务汇总查询\r\n门店编号,门店名称,交易订单总笔数\r\n".encode("gbk"))
        z.writestr(ss.ALIPAY_NAME, ss.alipay_bytes())
    code, summary = reconcile(run_main, journal, path)
    assert summary["settlement_file"]["format"] == "alipay"
    assert summary["counts"] == ss.EXPECTED
