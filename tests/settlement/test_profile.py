"""The merchant profile: the example loads; every fault names file and key."""

import os

import pytest

from daozhang.profile import ProfileError, load_profile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "examples", "merchant.toml")


def test_example_profile_loads():
    p = load_profile(EXAMPLE)
    assert (p["merchant_id"], p["mcc"], p["region"], p["timezone"]) == (
        "102290058120001", "5812", "2900", "Asia/Shanghai")
    assert p["settlement"]["cutoff_minutes"] == 23 * 60
    assert "2027-01-01" in p["settlement"]["holidays"]
    assert p["fees"]["card_types"]["debit"] == {"bp": 55, "cap": 2000}
    assert p["fees"]["card_types"]["credit"] == {"bp": 60, "cap": None}


def _write(tmp_path, text):
    path = tmp_path / "merchant.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


BASE = open(EXAMPLE, encoding="utf-8").read()


@pytest.mark.parametrize("old,new,key,why", [
    ('merchant_id = "102290058120001"', 'merchant_id = "10229005812000"', "merchant_id", "15 digits"),
    ('merchant_id = "102290058120001"', 'merchant_id = "102290054110001"', "merchant_id", "MCC 5411"),
    ('merchant_id = "102290058120001"', 'merchant_id = "102581058120001"', "merchant_id", "region 5810"),
    ('mcc = "5812"', "mcc = 5812", "mcc", "4 digits"),
    ('timezone = "Asia/Shanghai"', 'timezone = "China/Beijing"', "timezone", "IANA"),
    ('mode = "T1"', 'mode = "T+1"', "settlement.mode", "D0, T1"),
    ('cutoff = "23:00"', 'cutoff = "11pm"', "settlement.cutoff", "HH:MM"),
    ("2026-10-01, 2026-10-02", '"2026-10-01", "Oct 2"', "settlement.holidays[1]", "date"),
    ("tolerance = 1 ", "tolerance = -1 ", "fees.tolerance", ">= 0"),
    ("bp = 55 ", "bp = 0.55 ", "fees.debit.bp", "integer"),
    ("bp = 55 ", "rate = 55 ", "fees.debit.rate", "unknown key"),
    ("cap = 2000 ", 'cap = "20 yuan" ', "fees.debit.cap", "integer"),
    ('currency = "CNY"', 'currency = "rmb"', "currency", "ISO 4217"),
    ('terminal_id = "SH000001"', 'terminal = "SH000001"', "terminal", "unknown key"),
])
def test_each_fault_names_file_and_key(tmp_path, old, new, key, why):
    assert old in BASE
    path = _write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert str(info.value).startswith(path + ": " + key + ": ")
    assert why in str(info.value)
    assert info.value.exit_code == 2


def test_missing_table_and_bad_syntax_and_missing_file(tmp_path):
    no_fees = BASE[:BASE.index("[fees]")]
    with pytest.raises(ProfileError, match=": fees: missing"):
        load_profile(_write(tmp_path, no_fees))
    with pytest.raises(ProfileError, match=r"\(syntax\): not valid TOML"):
        load_profile(_write(tmp_path, BASE + "\n[[[oops"))
    with pytest.raises(ProfileError, match=r"\(file\): cannot read"):
        load_profile(str(tmp_path / "absent.toml"))


def test_locale_defaults_to_zh_cn_for_cny_and_en_otherwise(tmp_path):
    assert load_profile(EXAMPLE)["locale"] == "zh-CN"
    usd = load_profile(_write(tmp_path, BASE.replace('currency = "CNY"', 'currency = "USD"', 1)))
    assert usd["locale"] == "en"
    chosen = BASE.replace('currency = "CNY"', 'currency = "CNY"\nlocale = "en"', 1)
    assert load_profile(_write(tmp_path, chosen))["locale"] == "en"
    bad = BASE.replace('currency = "CNY"', 'currency = "CNY"\nlocale = "zh-TW"', 1)
    path = _write(tmp_path, bad)
    with pytest.raises(ProfileError, match=": locale: expected one of en, zh-CN, got 'zh-TW'"):
        load_profile(path)
