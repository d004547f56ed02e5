"""Property and fuzz tests of the settlement readers (issue 12 and 14).

Invariants: the byte-counted fixed-width reader and a writer of the same
layout round-trip any GBK text; every reader, fed any bytes, either returns
rows or raises SettlementFileError (never another exception), and no output
holds a card number by the card rule."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daozhang.agent.core import card_data
from daozhang.settlement_files import SettlementFileError, open_settlement
from daozhang.settlement_files.card_mask import mask_cell
from daozhang.settlement_files.fixed_width import join_record, split_record
from dztest import settlement_samples as ss

# Characters GBK can encode: ASCII letters and digits, CJK, full-width forms.
GBK_TEXT = st.text(st.characters(codec="gbk", exclude_characters="\r\n",
                                 exclude_categories=("Cs", "Cc")), max_size=12).map(
    lambda t: t.rstrip(" "))


@given(st.lists(st.tuples(GBK_TEXT, st.integers(0, 10)), min_size=1, max_size=12),
       st.integers(0, 2))
@settings(max_examples=300, deadline=None)
def test_fixed_width_round_trips_any_gbk_text(fields, separator):
    texts = [t for t, _ in fields]
    widths = [len(t.encode("gbk")) + slack for t, slack in fields]
    widths = [max(w, 1) for w in widths]
    record = join_record(texts, widths, separator, "gbk")
    assert len(record) == sum(widths) + separator * (len(widths) - 1)
    assert split_record(record, widths, separator, "gbk") == texts


def test_fixed_width_counts_bytes_not_characters():
    record = join_record(["老王", "12"], [6, 2], 1, "gbk")
    assert record == "老王".encode("gbk") + b"   12"
    assert split_record(record, [6, 2], 1, "gbk") == ["老王", "12"]


SAMPLES = [(ss.ZM_NAME, ss.zm_bytes()), (ss.ACOM_NAME, ss.acom_bytes()),
           (ss.WECHAT_NAME, ss.wechat_bytes()), (ss.ALIPAY_NAME, ss.alipay_bytes()),
           ("s.csv", ss.stripe_bytes()), ("a_20270105.csv", ss.adyen_bytes())]
FORMATS = ["unionpay-zm", "unionpay-acom", "wechatpay", "alipay", "stripe", "adyen"]


def _read_all(data, fmt, name):
    try:
        stream = open_settlement(data, fmt, name=name)
        rows = list(stream.rows())
    except SettlementFileError:
        return None
    return rows, stream.info.as_dict()


def _no_card_number(rows, info):
    """By the project's rule: identifier keys as identifiers, the rest (and
    every message) as free text."""
    info.pop("path")        # the caller's own file name (a 20-digit PID, a date)
    for row in rows:
        for key, value in row.items():
            if isinstance(value, str):
                assert mask_cell(value, key in card_data.IDENTIFIER_KEYS)[1] is False, key
    assert mask_cell(json.dumps(info, ensure_ascii=False))[1] is False


@given(st.sampled_from(range(len(SAMPLES))), st.data())
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_reader_on_mutated_files_raises_only_its_own_error(which, data):
    name, sample = SAMPLES[which]
    mutated = bytearray(sample)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(mutated) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "pan", "insert"]))
        if action == "flip":
            mutated[at] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del mutated[at:at + data.draw(st.integers(1, 40))]
        elif action == "pan":
            mutated[at:at] = ss.FULL_PAN.encode()
        else:
            mutated[at:at] = data.draw(st.binary(max_size=20))
    for fmt in (FORMATS[which], "auto"):
        result = _read_all(bytes(mutated), fmt, name)
        if result is not None:
            _no_card_number(*result)


@given(st.binary(max_size=600), st.sampled_from(FORMATS + ["csv", "auto"]))
@settings(max_examples=300, deadline=None)
def test_every_reader_on_random_bytes(data, fmt):
    result = _read_all(data, fmt, "x.csv")
    if result is not None:
        _no_card_number(*result)


def _workbook_samples():
    import io
    import openpyxl
    book = openpyxl.Workbook()
    ws = book.active
    ws.append(["acquirer_ref", "amount", "fee", "settled_amount", "settled_at"])
    ws.append(["A1", 100, 1, 99, "2027-01-05T00:00:00+08:00"])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


XLSX = _workbook_samples()


@given(st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_workbook_readers_on_damaged_files_raise_only_their_own_error(data):
    from daozhang.settlement_files import Mapping, decode_settlement_bytes
    blob = bytearray(XLSX)
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(blob) - 1))
        blob[at] = data.draw(st.integers(0, 255))
    for kind in ("xlsx", "xls"):
        mapping = Mapping.default()
        mapping.file_type = kind
        for payload in (bytes(blob), data.draw(st.binary(max_size=300))):
            try:
                decode_settlement_bytes(payload, mapping, "w." + kind)
            except SettlementFileError:
                pass


@given(st.binary(max_size=400))
@settings(max_examples=150, deadline=None)
def test_bank_statement_reader_on_random_bytes(tmp_path_factory, data):
    import os
    from daozhang.settlement_files.bank import read_bank_statement
    d = tmp_path_factory.mktemp("bank")
    path = os.path.join(str(d), "s.csv")
    with open(path, "wb") as f:
        f.write("交易日期,交易时间,借方发生额,贷方发生额,余额,对方户名,摘要\r\n".encode("gbk") + data)
    maps = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "maps")
    try:
        statement = read_bank_statement(path, os.path.join(maps, "bank-statement.toml"))
    except SettlementFileError:
        return
    assert all(c["amount"] > 0 for c in statement.credits)
    assert mask_cell(json.dumps(statement.credits, ensure_ascii=False))[1] is False
