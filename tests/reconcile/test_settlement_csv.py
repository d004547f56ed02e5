"""The settlement CSV reader (docs/SPEC.md §7.9): the default
layout, bad rows by line number, mappings, and a fuzz of arbitrary text."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daozhang.settlement_files import (
    Mapping, MappingError, SettlementFileError, decode_settlement_bytes, load_mapping,
    mapping_from_dict, parse_settlement_text, read_settlement_file)
from daozhang.settlement_files.card_mask import mask_card_column as mask_card
from dztest.reconcile import COLUMNS, csv_text

HEADER = ",".join(COLUMNS)
GOOD = ("A1,102290058120001,SH000001,R00000000001,A00001,2027-01-04T10:00:00+08:00,sale,"
        "6222 02XX XXXX 0001,100000,550,99450,2027-01-05T22:00:00+08:00,5812,2900")
MS_0105_2200 = 1799157600000      # 2027-01-05T14:00:00Z


def test_default_layout_row_has_the_shape_the_checks_take():
    f = parse_settlement_text(HEADER + "\n" + GOOD + "\n")
    assert f.bad_rows == [] and f.repeated == 0
    assert f.rows == [{"acquirer_ref": "A1", "merchant_id": "102290058120001",
                       "terminal_id": "SH000001", "rrn": "R00000000001", "auth_code": "A00001",
                       "txn_time": MS_0105_2200 - 36 * 3600 * 1000, "kind": "sale",
                       "card": "622202******0001", "amount": 100000, "fee": 550,
                       "settled_amount": 99450, "settled_at": MS_0105_2200, "mcc": "5812",
                       "region": "2900", "order_id": None, "trace_no": None,
                       "batch_no": None, "channel": None, "line": 2}]


def test_optional_columns_may_be_absent_or_empty_bom_and_crlf_accepted():
    text = ("\ufeffsettled_at , amount,fee,settled_amount,acquirer_ref,rrn\r\n"
            "2027-01-05T14:00:00Z,-500,0,-500,R1,\r\n")
    f = parse_settlement_text(text)
    assert f.bad_rows == []
    row = f.rows[0]
    assert (row["amount"], row["settled_at"], row["rrn"], row["mcc"], row["txn_time"]) == (
        -500, MS_0105_2200, None, None, None)


def test_bad_rows_are_reported_with_line_numbers_and_good_rows_still_count():
    lines = [HEADER, GOOD,
             GOOD.replace("A1,", "A2,").replace("100000,550", "12.50,550"),      # line 3
             GOOD.replace("A1,", "A3,").replace(",5812,", ",58,"),               # line 4
             "",                                                                # blank: skipped
             GOOD.replace("A1,", "A4,").replace("2027-01-05T22:00:00+08:00", "yesterday"),
             GOOD.replace("A1,", "A5,") + ",extra",                             # line 7
             GOOD.replace("A1,", ",").replace("", ""),                          # line 8: no ref
             GOOD.replace("A1,", "A6,").replace(",sale,", ",gift,"),            # line 9
             '"A7\nstill A7",' + GOOD.split(",", 1)[1],                         # lines 10-11
             GOOD.replace("99450", "99451"),                                    # 12: A1 changed
             GOOD,                                                              # 13: exact repeat
             GOOD.replace("A1,", "A8,").replace("6222 02XX XXXX 0001", "4111111111111111")]
    f = parse_settlement_text("\n".join(lines) + "\n")
    bad = dict((b["line"], b["reason"]) for b in f.bad_rows)
    assert sorted(bad) == [3, 4, 6, 7, 8, 9, 10, 12]
    assert bad[3].startswith("amount: expected an integer in minor units, got '12.50'")
    assert bad[4].startswith("mcc: expected exactly 4 digits")
    assert bad[6].startswith("settled_at: expected RFC 3339")
    assert bad[7].startswith("(row): 15 fields, the header has 14")
    assert bad[8] == "acquirer_ref: missing (required)"
    assert bad[9].startswith("kind: expected one of sale|")
    assert bad[10] == "acquirer_ref: control character '\\n' in 'A7\\nstill A7'"
    assert bad[12] == "acquirer_ref: 'A1' repeats line 2 with different content"
    assert [(r["acquirer_ref"], r["line"]) for r in f.rows] == [
        ("A1", 2), ("A8", 14)]
    assert f.repeated == 1
    assert f.rows[1]["card"] == "411111******1111"      # a full card number never kept


def test_card_value_never_echoed_in_a_reason():
    f = parse_settlement_text(HEADER + "\n" + GOOD.replace("6222 02XX XXXX 0001", "4" * 45) + "\n")
    assert len(f.bad_rows) == 1 and "4444" not in f.bad_rows[0]["reason"]


def test_mask_card():
    assert mask_card("6222 02XX XXXX 1234") == "622202******1234"
    assert mask_card("4111-1111-1111-1111") == "411111******1111"
    assert mask_card("123456") == "**3456"
    assert mask_card("12") == "12"


@pytest.mark.parametrize("text, fragment", [
    ("", "no header line"),
    ("\n\n", "no header line"),
    ("acquirer_ref,amount,fee\nA,1,2\n", "lacks required column(s) settled_amount, settled_at"),
    (HEADER + ",amount\n", "column 'amount' appears 2 times"),
])
def test_file_errors(text, fragment):
    with pytest.raises(SettlementFileError) as info:
        parse_settlement_text(text, name="s.csv")
    assert fragment in str(info.value) and str(info.value).startswith("s.csv: ")
    assert info.value.exit_code == 2


def test_wrong_encoding_names_the_offset(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes((HEADER + "\n").encode() + "A1,商户".encode("gb18030"))
    with pytest.raises(SettlementFileError) as info:
        read_settlement_file(str(path))
    assert "not utf-8 near line " in str(info.value)
    with pytest.raises(SettlementFileError, match="cannot read settlement file"):
        read_settlement_file(str(tmp_path / "missing.csv"))


MAPPING_TOML = """
[csv]
encoding = "gb18030"
delimiter = ";"
skip_lines = 2

[columns]
acquirer_ref = "清算流水号"
rrn = "检索参考号"
terminal_id = "终端号"
amount = "交易金额"
fee = "手续费"
settled_amount = "清算金额"
settled_at = "清算时间"
txn_time = "交易时间"
kind = "交易类型"

[amounts]
scale = 2

[times]
format = "%Y-%m-%d %H:%M:%S"
timezone = "Asia/Shanghai"

[kinds]
"消费" = "sale"
"退货" = "refund"

[fixed]
merchant_id = "102290058120001"
"""


def test_mapping_file_reads_another_acquirers_layout(tmp_path):
    mpath = tmp_path / "bank.toml"
    mpath.write_text(MAPPING_TOML, encoding="utf-8")
    mapping = load_mapping(str(mpath))
    text = ("某某银行 清算明细\n日期 2027-01-05\n"
            "清算流水号;检索参考号;终端号;交易金额;手续费;清算金额;清算时间;交易时间;交易类型\n"
            "Q1;R00000000001;SH000001;1000.00;5.5;994.50;2027-01-05 22:00:00;2027-01-04 10:00:00;消费\n"
            "Q2;R2;SH000001;-200;0;-200.00;2027-01-05 22:00:00;;退货\n"
            "Q3;R3;SH000001;1.005;0;1;2027-01-05 22:00:00;;消费\n")
    path = tmp_path / "bank.csv"
    path.write_bytes(text.encode("gb18030"))
    f = read_settlement_file(str(path), mapping)
    assert f.bad_rows == [{"line": 6, "reason": "amount: 3 fraction digits, the mapping's "
                                                "scale is 2: '1.005' (declare a rounding rule to accept it)"}]
    q1, q2 = f.rows
    assert (q1["amount"], q1["fee"], q1["settled_amount"]) == (100000, 550, 99450)
    assert (q1["settled_at"], q1["txn_time"]) == (MS_0105_2200, MS_0105_2200 - 36 * 3600 * 1000)
    assert (q1["kind"], q1["merchant_id"], q1["line"]) == ("sale", "102290058120001", 4)
    assert (q2["kind"], q2["amount"], q2["settled_amount"]) == ("refund", -20000, -20000)


@pytest.mark.parametrize("data, fragment", [
    ({"csv": {"encoding": "klingon"}}, "csv.encoding: unknown encoding"),
    ({"csv": {"delimiter": ",,"}}, "csv.delimiter: expected text of 1 to 1"),
    ({"columns": {"amount": "x", "fee": "x"}}, "columns.fee: file column 'x' is already amount"),
    ({"columns": {"colour": "x"}}, "columns.colour: unknown column"),
    ({"amounts": {"scale": 9}}, "amounts.scale: expected an integer 0..8"),
    ({"times": {"format": "%Y-%m-%d"}}, "times.timezone: missing"),
    ({"times": {"timezone": "Asia/Shanghai"}}, "times.timezone: only used with times.format"),
    ({"kinds": {"消费": "purchase"}}, "kinds.消费: expected one of"),
    ({"fixed": {"mcc": "58"}}, "fixed.mcc: mcc: expected exactly 4 digits"),
    ({"extra": {}}, "extra: unknown table"),
])
def test_mapping_errors_name_the_key(data, fragment):
    with pytest.raises(MappingError) as info:
        mapping_from_dict(data, "bank.toml")
    assert str(info.value).startswith("bank.toml: ") and fragment in str(info.value)
    assert info.value.exit_code == 2


def test_scenario_csv_round_trips():
    from dztest.reconcile import scenario_rows
    rows = scenario_rows()
    f = parse_settlement_text(csv_text(rows))
    assert f.bad_rows == [] and len(f.rows) == len(rows)
    assert [r["line"] for r in f.rows] == list(range(2, 2 + len(rows)))


# Fuzz.  Invariant: for any text, the reader returns a SettlementFile whose
# rows have the checks' types and whose bad rows name a line inside the
# text, or raises SettlementFileError; never anything else.

_MAPPINGS = [Mapping.default(),
             mapping_from_dict({"amounts": {"scale": 2}, "csv": {"delimiter": ";"},
                                "times": {"format": "%Y%m%d%H%M%S", "timezone": "Asia/Shanghai"},
                                "kinds": {"x": "sale"}})]
_ALPHABET = st.sampled_from(list(',;"\n\r -.:+TZ0123456789abcXx*\t\x00') + ["\ufeff", "消"])
_FIELD = st.one_of(st.sampled_from(["2027-01-05T22:00:00+08:00", "20270105220000", "12.50", "-3",
                                    "sale", "5812", "102290058120001", '"q""d"', ""]),
                   st.text(_ALPHABET, max_size=12))


@st.composite
def _csvish(draw):
    header = draw(st.sampled_from([HEADER, "acquirer_ref;amount;fee;settled_amount;settled_at",
                                   "", "acquirer_ref,amount"]))
    sep = draw(st.sampled_from([",", ";"]))
    lines = [sep.join(draw(st.lists(_FIELD, max_size=16))) for _ in range(draw(st.integers(0, 6)))]
    return "\n".join([header] + lines + [draw(st.text(_ALPHABET, max_size=30))])


def _check_invariant(text, mapping):
    try:
        f = parse_settlement_text(text, mapping)
    except SettlementFileError:
        return
    physical = text.count("\n") + text.count("\r") + 1
    for b in f.bad_rows:
        assert 1 <= b["line"] <= physical and isinstance(b["reason"], str)
    refs = [r["acquirer_ref"] for r in f.rows]
    assert len(refs) == len(set(refs))
    for r in f.rows:
        for name in ("amount", "fee", "settled_amount", "settled_at"):
            assert type(r[name]) is int
        assert r["txn_time"] is None or type(r["txn_time"]) is int
        assert all(r[c] is None or type(r[c]) is str for c in
                   ("acquirer_ref", "merchant_id", "terminal_id", "rrn", "auth_code", "kind",
                    "card", "mcc", "region"))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(st.text(max_size=300), _csvish()), which=st.integers(0, 1))
def test_fuzz_text_gives_rows_or_our_error(text, which):
    _check_invariant(text, _MAPPINGS[which])


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_fuzz_bytes_gives_rows_or_our_error(data):
    try:
        decode_settlement_bytes((HEADER + "\n").encode() + data)
    except SettlementFileError:
        pass
