"""The merchant id shapes of the payment channels (docs/SPEC.md §4.3).
Portable: CPython and MicroPython.

- UnionPay (cards and UnionPay QR): 15 digits, digits 4-7 the region and
  8-11 the MCC (the only id the MCC and region rules read);
- WeChat Pay: the (sub-)merchant id, 子商户号 / 特约商户号, 10 digits;
- Alipay: the partner id (PID), 16 digits starting 2088.

None of them can hold a card number: 10 digits is below the 13 of the
shortest PAN, and 2088 is no card scheme's issuer prefix (SPEC 4.4), so a
merchant id stays an identifier exempt from the card scan, whatever its
shape.  `kind_of(value)` names the shape; `problem(value, channel)` says
why a value is not a merchant id (for the channel, when given).
"""

ALIPAY_PREFIX = "2088"
KINDS = ("unionpay", "wechat", "alipay")
# channel of a transaction -> the id shape it may carry besides UnionPay's
CHANNEL_KIND = {"wechat": "wechat", "alipay": "alipay"}
WHAT = "15 digits (UnionPay), 10 (WeChat Pay sub-merchant) or 16 starting 2088 (Alipay PID)"


def _digits(value):
    if not isinstance(value, str) or not value:
        return False
    for c in value:
        if c not in "0123456789":
            return False
    return True


def kind_of(value):
    """"unionpay", "wechat", "alipay" or None (not a merchant id)."""
    if not _digits(value):
        return None
    n = len(value)
    if n == 15:
        return "unionpay"
    if n == 10:
        return "wechat"
    if n == 16 and value.startswith(ALIPAY_PREFIX):
        return "alipay"
    return None


def problem(value, channel=None):
    """None, or why `value` is not a merchant id a `channel` sale carries
    (a card sale: UnionPay's only; a WeChat or Alipay sale: also its own)."""
    kind = kind_of(value)
    if kind is None:
        return "expected " + WHAT
    if channel is None or kind == "unionpay" or CHANNEL_KIND.get(channel) == kind:
        return None
    return "a %s merchant id needs channel %s, got %s" % (kind, kind, channel)


def allowed(profile, channel=None):
    """The merchant ids a sale of `channel` may carry on this terminal (the
    intake's merchant_mismatch rule): the profile's UnionPay merchant_id, and
    the channel's own id where the profile's [merchant_ids] names it."""
    ids = (profile.get("merchant_id"),)
    own = (profile.get("merchant_ids") or {}).get(channel)
    return ids + (own,) if own else ids
