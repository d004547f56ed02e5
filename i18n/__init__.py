"""Merchant-facing words in the merchant's language (gettext catalogs, Babel).

    texts = texts_for("zh-CN")            # or "en"
    _ = texts.gettext                     # pybabel extracts _("...") calls
    texts.ngettext("%(n)d row", "%(n)d rows", n) % {"n": n}
    texts.money(125000, "CNY")            # "¥1,250.00" formatted for the locale
    texts.when("2027-01-04T10:00:00+08:00")   # local date and time for the locale

The catalogs live in i18n/locales/<ll_CC>/LC_MESSAGES/daozhang.po (the
source, in git) and are compiled to .mo by `make setup` (scripts/setup.sh:
`pybabel compile`); README "Translations" says how to add a string.  A
checkout that was never set up still works: a missing or older .mo is
compiled from its .po in memory (Babel's own reader and writer), so a
stale binary never shows an old text.

English is the source language: texts_for("en") translates nothing and
keeps the English formats the tests and the JSON output already use.  The
locale is the merchant profile's `locale` (daozhang/profile.py: zh-CN by default
for a CNY profile, en otherwise), the reconcile CLI's `--lang` overrides it.
"""

import gettext
import io
import os

from daozhang.agent.core.settlement.alerts import format_money
from daozhang.i18n import cldr_money

DOMAIN = "daozhang"
LOCALES = ("en", "zh-CN")
LOCALE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "locales")
# Fonts named wherever Chinese is drawn (the HTML report, the demo page): the
# common CJK faces of Linux (fonts-noto-cjk, WenQuanYi), macOS and Windows.
CJK_FONT_STACK = ('"Noto Sans CJK SC","Noto Sans SC","Source Han Sans SC","PingFang SC",'
                  '"Microsoft YaHei","WenQuanYi Micro Hei",sans-serif')

_cache = {}


def N_(message):
    """Mark a string for extraction where it is defined (a table), translate
    it where it is shown: texts.gettext(TABLE[key])."""
    return message


def default_locale(currency):
    """The profile's default: Simplified Chinese for a CNY merchant."""
    return "zh-CN" if currency == "CNY" else "en"


def check_locale(value):
    """The locale as given, or ValueError naming the ones there are."""
    if value not in LOCALES:
        raise ValueError("expected one of %s, got %r" % (", ".join(LOCALES), value))
    return value


def _babel_name(locale):
    return locale.replace("-", "_")


def _catalog(locale):
    """gettext translations for `locale` from its .mo, or its .po when the
    .mo is missing or older than the .po."""
    folder = os.path.join(LOCALE_DIR, _babel_name(locale), "LC_MESSAGES")
    po, mo = os.path.join(folder, DOMAIN + ".po"), os.path.join(folder, DOMAIN + ".mo")
    if os.path.exists(mo) and (not os.path.exists(po) or os.path.getmtime(mo) >= os.path.getmtime(po)):
        with open(mo, "rb") as f:
            return gettext.GNUTranslations(f)
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    with open(po, "rb") as f:
        catalog = read_po(f, locale=_babel_name(locale), domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


class Texts:
    """One locale's translations and formats."""

    def __init__(self, locale):
        self.locale = check_locale(locale)
        self.translations = (gettext.NullTranslations() if locale == "en"
                             else _catalog(locale))
        self.gettext = self.translations.gettext
        self.ngettext = self.translations.ngettext

    def money(self, minor, currency):
        """Minor units as the locale writes money: en keeps the terminal's
        format (agent/core/alerts.format_money); others ask Babel (CLDR),
        through i18n/cldr_money.py's copy of its patterns where it has one."""
        if self.locale == "en":
            return format_money(minor, currency)
        text = cldr_money.format_money(minor, currency, self.locale)
        if text is not None:          # the daemon's locales: no Babel locale data in memory
            return text
        from decimal import Decimal
        from babel.numbers import format_currency, get_currency_precision
        digits = get_currency_precision(currency)
        return format_currency(Decimal(minor).scaleb(-digits), currency,
                               locale=_babel_name(self.locale))

    def when(self, text):
        """RFC 3339 text -> the local date and time as the locale writes it
        (the zone is named once in the report's header)."""
        if text is None:
            return ""
        if self.locale == "en":
            return text[:10] + " " + text[11:19]
        from datetime import datetime
        from babel.dates import format_datetime
        moment = datetime.fromisoformat(text)
        return format_datetime(moment.replace(tzinfo=None), "medium",
                               locale=_babel_name(self.locale))

    def date(self, day):
        """'2027-01-04' -> the locale's medium date."""
        if self.locale == "en" or not day:
            return day or ""
        from datetime import date
        from babel.dates import format_date
        return format_date(date.fromisoformat(day), "medium", locale=_babel_name(self.locale))


def texts_for(locale):
    """The (cached) Texts of a locale; ValueError for one there is no catalog for."""
    if locale not in _cache:
        _cache[locale] = Texts(locale)
    return _cache[locale]
