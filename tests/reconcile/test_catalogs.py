"""The message catalogs (i18n/): every merchant-facing string extracted
from the code (babel.cfg) has a zh-CN translation with the same
placeholders, and nothing translated is stale."""

import os
import re

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from daozhang.i18n import LOCALE_DIR, texts_for

REPO = os.path.join(os.path.dirname(__file__), "..", "..")
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "NP_": (1, 2)}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def _extracted():
    ids = set()
    with open(os.path.join(REPO, "babel.cfg"), encoding="utf-8") as f:
        import babel.messages.frontend as frontend
        method_map, options_map = frontend.parse_mapping_cfg(f)
    for _file, _line, message, _comments, _context in extract_from_dir(
            REPO, method_map, options_map, keywords=KEYWORDS):
        ids.add(message[0] if isinstance(message, tuple) else message)
    return ids


def test_every_extracted_string_is_translated_with_the_same_placeholders():
    with open(os.path.join(LOCALE_DIR, "zh_CN", "LC_MESSAGES", "daozhang.po"), "rb") as f:
        catalog = read_po(f)
    translated = {}
    for m in catalog:
        if m.id:
            key = m.id[0] if isinstance(m.id, tuple) else m.id
            translated[key] = (m.id, m.string)
    extracted = _extracted()
    assert extracted, "nothing extracted: babel.cfg names no file"
    assert sorted(extracted - set(translated)) == [], "untranslated: run pybabel update"
    assert sorted(set(translated) - extracted) == [], "stale entries: run pybabel update"
    for key, (ids, strings) in translated.items():
        ids = ids if isinstance(ids, tuple) else (ids,)
        strings = strings if isinstance(strings, tuple) else (strings,)
        for s in strings:
            assert s, key
            assert set(PLACEHOLDER.findall(s)) == set(PLACEHOLDER.findall(ids[0])), key


def test_english_is_the_source_and_zh_cn_formats_money_and_times():
    en, zh = texts_for("en"), texts_for("zh-CN")
    assert en.gettext("Problem transactions") == "Problem transactions"
    assert zh.gettext("Problem transactions") == "问题交易"
    assert zh.ngettext("%(n)d payment overdue", "%(n)d payments overdue", 3) % {"n": 3} \
        == "3 笔款项逾期未到"
    assert en.money(125000, "CNY") == "¥1,250.00" and zh.money(125000, "CNY") == "¥1,250.00"
    assert zh.money(-550, "CNY") == "-¥5.50"
    assert zh.when("2027-01-04T10:06:00+08:00") == "2027年1月4日 10:06:00"
    assert en.when("2027-01-04T10:06:00+08:00") == "2027-01-04 10:06:00"
