"""i18n/cldr_money.py: the daemon's copy of Babel's money patterns.

Invariant: for every locale and currency in the table, and any amount,
format_money gives exactly Babel's format_currency; a pair it does not
know gives None (the caller asks Babel).
"""

from decimal import Decimal

import pytest
from babel.numbers import format_currency, get_currency_precision
from hypothesis import given, settings, strategies as st

from daozhang.i18n import cldr_money, texts_for

PAIRS = [(locale, currency) for locale, table in cldr_money.PATTERNS.items() for currency in table]


def babel_money(minor, currency, locale):
    digits = get_currency_precision(currency)
    return format_currency(Decimal(minor).scaleb(-digits), currency, locale=locale.replace("-", "_"))


@pytest.mark.parametrize("locale,currency", PAIRS)
def test_digits_are_babels(locale, currency):
    assert cldr_money.DIGITS.get(currency, 2) == get_currency_precision(currency)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PAIRS), st.integers(min_value=-10 ** 13, max_value=10 ** 13))
def test_every_entry_formats_as_babel_does(pair, minor):
    locale, currency = pair
    assert cldr_money.format_money(minor, currency, locale) == babel_money(minor, currency, locale)


def test_an_unknown_pair_is_left_to_babel():
    assert cldr_money.format_money(100, "SGD", "zh-CN") is None
    assert cldr_money.format_money(100, "CNY", "en") is None
    assert texts_for("zh-CN").money(123456, "SGD") == babel_money(123456, "SGD", "zh-CN")
    assert texts_for("zh-CN").money(123456, "CNY") == "¥1,234.56"
