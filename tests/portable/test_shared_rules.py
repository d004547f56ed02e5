"""The core's shared rules on both interpreters: the device id rule
(tests/vectors/device_ids.json), the one RFC 3339 parser, topic names.

RFC 3339 properties (a seeded generator stands in for hypothesis, which
MicroPython lacks):
- format then parse is the identity, for any instant and offset;
- the strict form (the intake's sale time) accepts a subset of the lenient
  one, and where both accept they give the same instant;
- any mutation of a valid time either parses or raises ValidationError,
  never anything else.
"""

from daozhang.agent.core import device_id
from daozhang.agent.core.business_calendar import format_rfc3339, parse_rfc3339_parts
from daozhang.agent.core.errors import LocalError, ValidationError
from daozhang.agent.core.intake.txn import rfc3339_ok
from daozhang.agent.core.journal import layout
from daozhang.agent.core.sync import topics

from portable import kit


class _Random:
    """A small LCG: the same sequence on CPython and MicroPython."""

    def __init__(self, seed):
        self.state = seed

    def below(self, n):
        self.state = (self.state * 1103515245 + 12345) % 2147483648
        return (self.state >> 8) % n


def test_the_device_id_vectors():
    vectors = kit.vector("device_ids.json")
    for good in vectors["valid"]:
        assert device_id.is_valid(good), good
        assert layout.check_device_id(good) == good
    for bad in vectors["invalid"]:
        assert not device_id.is_valid(bad["id"]), bad["why"]
        exc = kit.raises(LocalError, device_id.check, bad["id"], "--device-id")
        assert str(exc).startswith("--device-id ")
        if bad.get("card"):
            assert "card data" in str(exc) and "1111" not in str(exc)


def test_format_then_parse_is_the_identity():
    rnd = _Random(11)
    for _ in range(200):
        utc = rnd.below(4102444800)                  # 1970 .. 2100
        offset = (rnd.below(28 * 4 + 1) - 14 * 4) * 900   # -14:00 .. +14:00 in quarter hours
        text = format_rfc3339(utc, offset)
        assert parse_rfc3339_parts(text) == (utc, 0), text
        assert parse_rfc3339_parts(text, strict=True) == (utc, 0), text
        assert rfc3339_ok(text)


_ALPHABET = "0123456789-:Tt Zz+.x"
_SEEDS = ("2026-11-26T09:30:00+08:00", "2024-02-29T23:59:60.123456789Z",
          "2026-11-26T09:30:00.1234567890Z", "2026-11-26t09:30:00z", "2026-11-26 09:30:00.5-03:30")


def _parse(text, strict):
    try:
        return parse_rfc3339_parts(text, "time", strict)
    except ValidationError:
        return None


def test_strict_accepts_a_subset_and_agrees_and_nothing_else_escapes():
    rnd = _Random(5)
    for _ in range(1500):
        chars = list(_SEEDS[rnd.below(len(_SEEDS))])
        for _ in range(rnd.below(4)):
            at = rnd.below(len(chars) + 1)
            op = rnd.below(3)
            if op == 0 and at < len(chars):
                chars[at] = _ALPHABET[rnd.below(len(_ALPHABET))]
            elif op == 1:
                chars.insert(at, _ALPHABET[rnd.below(len(_ALPHABET))])
            elif at < len(chars):
                del chars[at]
        text = "".join(chars)
        strict, lenient = _parse(text, True), _parse(text, False)
        assert strict is None or strict == lenient, text
        assert rfc3339_ok(text) == (strict is not None), text


def test_the_intakes_strict_form():
    assert _parse("2026-11-26T09:30:00.123456789+08:00", True) == (1795656600, 123)
    for text in ("2026-11-26t09:30:00Z", "2026-11-26 09:30:00Z", "2026-11-26T09:30:00z",
                 "2026-11-26T09:30:00.1234567890Z", "2026-02-30T09:30:00Z", "2026-11-26T09:30:00"):
        assert _parse(text, True) is None, text
    assert _parse("2026-11-26 09:30:00z", False) == (1795685400, 0)


def test_topics_are_built_and_parsed_in_one_place():
    assert topics.device_topic("pos-1", topics.ACKS) == "daozhang/v1/pos-1/acks"
    assert topics.device_prefix("pos-1") + "status" == topics.device_topic("pos-1", "status")
    assert topics.shared("g", "receipts") == "$share/g/daozhang/v1/+/receipts"
    assert topics.parse("daozhang/v1/pos-1/receipts") == ("pos-1", "receipts")
    for bad in ("daozhang/v1/pos-1", "daozhang/v2/pos-1/acks", "daozhang/v1//acks", "x/v1/a/b/c", ""):
        assert topics.parse(bad) == (None, None), bad
