"""Deposit findings and merchant id shapes (issue 14; SPEC 7.10.2, 4.3) on
both interpreters: the checks a terminal applies to a deposit message, the
alert observation it makes of one, and the channel id rules."""

from daozhang.agent.core import cbor, merchant_ids
from daozhang.agent.core.errors import RemoteError
from daozhang.agent.core.sync import deposit_alert

from portable import kit

KID = b"k" * 8


def _sign(data):
    return b"\x00" * 64      # the signature itself is sync_messages' to check


def _payout(**change):
    p = {"day": "2030-01-02", "status": "deposit_short", "expected": 30000,
         "received": 29000, "sales": ["S1", "S2"]}
    p.update(change)
    return p


def test_a_deposit_message_encodes_checks_and_becomes_an_observation():
    payload = deposit_alert.encode("pos-a", b"\x01" * 16, 1800000000000, _payout(), "CNY", KID,
                                   _sign)
    msg = cbor.loads(payload)
    assert deposit_alert.problem(msg) is None
    signed = cbor.loads(deposit_alert.signed_bytes(msg))
    assert signed[:2] == [deposit_alert.DOMAIN, "pos-a"] and signed[-1] == KID
    obs = deposit_alert.observation(msg, 5)
    assert (obs["kind"], obs["key"], obs["amount"], obs["at"]) == (
        "deposit_short", "2030-01-02", 1000, 5)
    assert obs["detail"]["sales"] == ["S1", "S2"]


def test_wrong_findings_are_refused_before_signing():
    for change in ({"received": 30000}, {"status": "deposit_missing"}, {"day": "2030-1-2"},
                   {"expected": -1}, {"status": "ok"}, {"sales": ["S1", ""]}):
        kit.raises(RemoteError, deposit_alert.encode, "pos-a", b"\x01" * 16, 1, _payout(**change),
                   "CNY", KID, _sign)


def test_merchant_id_shapes_and_channels():
    assert merchant_ids.kind_of("102290058120001") == "unionpay"
    assert merchant_ids.kind_of("1900000109") == "wechat"
    assert merchant_ids.kind_of("2088101122136241") == "alipay"
    assert merchant_ids.kind_of("4111111111111111") is None
    assert merchant_ids.problem("1900000109", "card") is not None
    assert merchant_ids.problem("1900000109", "wechat") is None
    profile = {"merchant_id": "102290058120001", "merchant_ids": {"alipay": "2088101122136241"}}
    assert merchant_ids.allowed(profile, "alipay") == ("102290058120001", "2088101122136241")
    assert merchant_ids.allowed(profile, "wechat") == ("102290058120001",)
