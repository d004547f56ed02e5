"""`daozhang backend settle` reads the same formats (--format auto) and runs
the bank check (--bank): rows with no receipt stay `unrouted`, so no broker
is needed here (the ack path itself: tests/settlement_e2e)."""

import json
import os

from daozhang.signing import generate_keypair
from dztest import settlement_samples as ss

MAPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "maps")


def config(tmp_path):
    generate_keypair(str(tmp_path / "backend"))
    path = tmp_path / "backend.toml"
    path.write_text('[backend]\ndb = "b.db"\nkey = "backend.key"\nshare_group = "g7f3k9q2x"\n'
                    '[broker]\nhost = "127.0.0.1"\nport = 1\n', encoding="utf-8")
    return str(path)


def test_settle_reads_a_wechat_bill_and_checks_the_bank(run_main, tmp_path):
    bill = tmp_path / ss.WECHAT_NAME
    bill.write_bytes(ss.wechat_bytes())
    rows = ss.logical_rows()
    expected = sum(r["net"] for r in rows)          # one settlement day
    statement = tmp_path / "bank.csv"
    statement.write_bytes(("交易日期,交易时间,借方发生额,贷方发生额,余额,对方户名,摘要\r\n"
                           "2027-01-05,09:00:00,,%s,,银联商务,清算款\r\n" % ss.yuan(expected - 300)
                           ).encode("gbk"))
    code, out = run_main("backend", "settle", str(bill), "--config", config(tmp_path), "--json",
                         "--bank", str(statement), "--bank-map",
                         os.path.join(MAPS, "bank-statement.toml"))
    report = json.loads(out[out.index("{"):].splitlines()[0])
    assert "payouts missing or short at the bank" in out
    assert code == 1                    # the payout is short
    assert (report["rows"], report["new"], report["unrouted"], report["bad_rows"]) == (
        9, 9, 9, [])
    day = report["payouts"]["days"][0]
    assert (day["day"], day["status"], day["expected"], day["difference"]) == (
        "2027-01-05", "deposit_short", expected, 300)


def test_settle_says_which_format_it_chose(run_main, tmp_path):
    zm = tmp_path / ss.ZM_NAME
    zm.write_bytes(ss.zm_bytes())
    code, out = run_main("backend", "settle", str(zm), "--config", config(tmp_path))
    assert code == 0
    assert "read as unionpay-zm (the name matches INN<yymmdd>nnZM_<merId>)" in out
    assert "9 rows: 9 new, 0 already ingested; 0 acks sent, 0 unknown settlements reported, " \
           "9 unrouted; 0 bad rows" in out
