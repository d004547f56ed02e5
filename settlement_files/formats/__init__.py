"""The built-in settlement file formats, each a mapping written in the map
language (settlement_files/mapping.py) from the format's public spec, plus
`sniff(name, head) -> reason or None` for `--format auto`.  SPEC §7.9.4."""

from daozhang.settlement_files.formats import (
    adyen, alipay, stripe, unionpay_acom, unionpay_zm, wechatpay)

# Sniffed in this order: specific names and headers first.
MODULES = (unionpay_zm, unionpay_acom, wechatpay, alipay, stripe, adyen)
BY_NAME = dict((m.NAME, m) for m in MODULES)
