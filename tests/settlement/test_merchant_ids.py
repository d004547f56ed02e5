"""Merchant ids of the QR channels (issue 14; SPEC 4.3): a 10-digit WeChat
Pay sub-merchant id and a 16-digit Alipay PID are accepted where the formats
and the profile carry them, never taken for card numbers, and never read for
an MCC or a region (only UnionPay's 15 digits hold those)."""

import pytest

from daozhang.agent.core import merchant_ids
from daozhang.agent.core.card_data import card_data_code, mask_card_numbers
from daozhang.agent.core.errors import ValidationError
from daozhang.agent.core.intake import txn
from daozhang.agent.core.settlement.settlement_checks import _code4
from daozhang.agent.core.sync import settlement_ack as sa
from daozhang.agent.intake_service import IntakeService, Refused
from daozhang.agent.journal_file import JournalFile, create_journal
from daozhang.profile import ProfileError, load_profile
from daozhang.signing import generate_keypair, load_signer
from daozhang.settlement_files import parse_settlement_text
from dztest.agent_daemon import MERCHANT_ID, PROFILE, TERMINAL_ID, sale
from dztest.settlement_e2e import plain_row

WECHAT = "1900000109"
ALIPAY = "2088101122136241"


def qr_sale(pos_txn_id, channel, merchant_id):
    s = sale(pos_txn_id, channel=channel, merchant_id=merchant_id)
    for key in ("card", "auth_code", "rrn"):
        del s[key]
    return s


def test_the_shapes():
    assert [merchant_ids.kind_of(v) for v in (MERCHANT_ID, WECHAT, ALIPAY)] == [
        "unionpay", "wechat", "alipay"]
    # 16 digits not starting 2088, 11-14 digits, letters: not a merchant id.
    for bad in ("4111111111111111", "12345678901", "19000001O9", "", None, 1900000109):
        assert merchant_ids.kind_of(bad) is None
    assert merchant_ids.problem(WECHAT, "alipay") == (
        "a wechat merchant id needs channel wechat, got alipay")
    assert merchant_ids.problem(MERCHANT_ID, "wechat") is None


def test_no_shape_is_a_card_number_nor_gives_an_mcc_or_region():
    for value in (WECHAT, ALIPAY, "2088" + "9" * 12):
        assert card_data_code(value) is None and mask_card_numbers(value) == (value, 0)
        assert _code4(None, value, 7) is None and _code4(None, value, 3) is None
    assert _code4(None, MERCHANT_ID, 7) == "5812"


def test_a_qr_sale_may_carry_its_channels_id_and_only_that_one():
    assert txn.validate(qr_sale("Q-1", "wechat", WECHAT))["merchant_id"] == WECHAT
    assert txn.validate(qr_sale("Q-2", "alipay", ALIPAY))["merchant_id"] == ALIPAY
    assert txn.validate(qr_sale("Q-3", "wechat", MERCHANT_ID))["merchant_id"] == MERCHANT_ID
    for obj in (qr_sale("Q-4", "alipay", WECHAT), sale("C-1", merchant_id=ALIPAY),
                sale("C-2", merchant_id="4111111111111111")):
        with pytest.raises(ValidationError) as info:
            txn.validate(obj)
        assert (info.value.field, info.value.code) == ("merchant_id", "bad_merchant_id")
        assert obj["merchant_id"] not in str(info.value)    # never echoes a submitted value


def _profile(tmp_path, table):
    base = open(PROFILE, encoding="utf-8").read()
    path = tmp_path / "merchant.toml"
    path.write_text(base + "\n[merchant_ids]\n" + table, encoding="utf-8")
    return str(path)


def test_the_profile_names_the_channel_ids(tmp_path):
    p = load_profile(_profile(tmp_path, 'wechat = "%s"\nalipay = "%s"\n' % (WECHAT, ALIPAY)))
    assert p["merchant_ids"] == {"wechat": WECHAT, "alipay": ALIPAY}
    assert merchant_ids.allowed(p, "wechat") == (MERCHANT_ID, WECHAT)
    assert merchant_ids.allowed(p, "card") == (MERCHANT_ID,)
    assert load_profile(PROFILE)["merchant_ids"] == {}
    for table, why in (('wechat = "%s"\n' % ALIPAY, "merchant_ids.wechat: expected 10 digits"),
                       ('alipay = "1088101122136241"\n', "merchant_ids.alipay: expected 16 "),
                       ('unionpay = "%s"\n' % MERCHANT_ID, "merchant_ids.unionpay: unknown key")):
        with pytest.raises(ProfileError, match=why):
            load_profile(_profile(tmp_path, table))


def test_the_intake_accepts_the_channel_id_the_profile_names(tmp_path):
    generate_keypair(str(tmp_path / "dev"))
    path = str(tmp_path / "j.dzj")
    create_journal(path, "pos-m", size=1 << 20, segment_size=64 << 10)
    j = JournalFile.open(path, load_signer(str(tmp_path / "dev.key")))
    try:
        svc = IntakeService(j, profile={"merchant_id": MERCHANT_ID, "terminal_id": TERMINAL_ID,
                                        "merchant_ids": {"wechat": WECHAT}})
        assert svc.submit(qr_sale("Q-1", "wechat", WECHAT))["seq"] > 0
        assert svc.submit(qr_sale("Q-2", "wechat", MERCHANT_ID))["seq"] > 0
        with pytest.raises(Refused) as info:       # another shop's WeChat id
            svc.submit(qr_sale("Q-3", "wechat", "1900000999"))
        assert info.value.code == "merchant_mismatch"
        with pytest.raises(Refused) as info:       # no Alipay id in the profile
            svc.submit(qr_sale("Q-4", "alipay", ALIPAY))
        assert info.value.code == "merchant_mismatch"
    finally:
        j.close()


def test_settlement_rows_and_acks_carry_every_shape():
    text = ("acquirer_ref,merchant_id,terminal_id,rrn,amount,fee,settled_amount,settled_at\n"
            "W1,%s,SH000001,,1000,6,994,2030-01-02T10:00:00+08:00\n"
            "A1,%s,SH000001,,1000,6,994,2030-01-02T10:00:00+08:00\n"
            "U1,%s,SH000001,,1000,6,994,2030-01-02T10:00:00+08:00\n"
            "X1,12345678901,SH000001,,1000,6,994,2030-01-02T10:00:00+08:00\n"
            % (WECHAT, ALIPAY, MERCHANT_ID))
    parsed = parse_settlement_text(text)
    assert [r["merchant_id"] for r in parsed.rows] == [WECHAT, ALIPAY, MERCHANT_ID]
    [bad] = parsed.bad_rows
    assert bad["line"] == 5 and "merchant_id: expected 15 digits (UnionPay), 10" in bad["reason"]
    assert parsed.card_count == 0
    for value in (WECHAT, ALIPAY, MERCHANT_ID):
        row = plain_row("R-1", "000000000001")
        row["merchant_id"] = value
        assert sa.row_ok(row)
    row["merchant_id"] = "12345678901"
    assert sa.row_problem(row).startswith("row.merchant_id: expected a merchant id")
