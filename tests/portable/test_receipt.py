"""Receipt codes (SPEC 5.5) on both interpreters: encode, decode, the
structural check, and refusal of an outage receipt."""

from daozhang.agent.core.errors import DecodeError
from daozhang.agent.core.intake import receipt
from daozhang.agent.core.journal import ring_storage

from portable import kit


def _appended(n=3):
    storage = ring_storage.MemoryStorage(kit.fresh_image())
    ring = ring_storage.open_ring(storage)
    return ring_storage.commit(storage, ring, [(1, {"n": i}) for i in range(n)], kit.StepClock().now(), None)


def test_receipt_code_round_trips_and_prints_as_qr_alphanumerics():
    for a in _appended(5):
        r = receipt.from_appended("portable-pos", a)
        code = receipt.encode(r)
        assert code.startswith("DZR:")
        assert all(c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567:" for c in code)
        assert receipt.decode(code) == r
        assert receipt.decode("  " + code.lower() + "\n") == r


def test_outage_receipt_is_refused_as_unsigned():
    r = receipt.from_appended("portable-pos", _appended(2)[1])
    kit.raises(receipt.ReceiptUnsigned, receipt.check, r)


def test_damaged_codes_are_decode_errors():
    code = receipt.encode(receipt.from_appended("portable-pos", _appended(1)[0]))
    for bad in ("", "DZR", "XYZ:" + code[4:], code[:-7], code + "1", 42):
        kit.raises(DecodeError, receipt.decode, bad)


def test_a_commits_codes_equal_each_records_own_encoding():
    # The intake encodes what a commit's receipts share once (receipt.codes):
    # byte for byte what encoding each receipt alone gives, for every batch
    # size up to a tree of 6 levels and a device id past a one-byte text head.
    for n in (1, 2, 3, 7, 16, 33):
        appended = _appended(n)
        for dev in ("p", "portable-pos-with-a-long-device-id"):
            assert receipt.codes(dev, appended) == [
                receipt.encode(receipt.from_appended(dev, a)) for a in appended]
    assert receipt.codes("p", []) == []
