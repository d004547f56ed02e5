"""Money as the merchant's locale writes it, without loading Babel's locale data.

Babel's format_currency is right but costly in a long-running process: its
first call unpickles the whole CLDR locale (for zh-CN: zh, zh_Hans,
zh_Hans_CN and root, about 4.4 MiB of resident memory that freeing its cache
does not give back).  The agent daemon shows money on every display refresh
and has a 48 MiB budget (docs/DESIGN.md "The daemon's memory"), so for the
locales and currencies a terminal uses, the CLDR pattern is copied here:
zh-CN writes "¤#,##0.00" (sign before the symbol; the currency's own
digits).  tests/shared/test_cldr_money.py holds every entry against Babel;
any other locale or currency returns None and the caller asks Babel.
"""

# CLDR zh (Simplified Chinese) currency symbols, as Babel gives them.
ZH_CN_SYMBOLS = {"CNY": "¥", "HKD": "HK$", "USD": "US$", "EUR": "€", "GBP": "£",
                 "JPY": "JP¥", "KRW": "₩", "TWD": "NT$"}
# ISO 4217 minor-unit digits of those currencies (Babel's get_currency_precision).
DIGITS = {"JPY": 0, "KRW": 0}
PATTERNS = {"zh-CN": ZH_CN_SYMBOLS}


def format_money(minor, currency, locale):
    """`minor` units of `currency` as `locale` writes them, or None when this
    table does not know the pair (ask Babel)."""
    symbol = PATTERNS.get(locale, {}).get(currency)
    if symbol is None:
        return None
    digits = DIGITS.get(currency, 2)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10 ** digits)
    text = "{:,}".format(whole)
    if digits:
        text += ".%0*d" % (digits, frac)
    return sign + symbol + text
