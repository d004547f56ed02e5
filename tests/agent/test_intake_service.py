"""Intake rules on a real journal file: idempotency, conflicts, originals, JournalFull."""

import threading

import pytest

from daozhang.agent.core.journal import record
from daozhang.agent.intake_service import IntakeService, Refused
from daozhang.agent.journal_file import JournalFile, create_journal
from daozhang.agent.receipt import verify_code
from daozhang.signing import generate_keypair, load_signer
from dztest.agent_daemon import MERCHANT_ID, TERMINAL_ID, sale


@pytest.fixture
def journal(tmp_path):
    generate_keypair(str(tmp_path / "dev"))
    path = str(tmp_path / "j.dzj")
    create_journal(path, "pos-s", size=1 << 20, segment_size=64 << 10)
    j = JournalFile.open(path, load_signer(str(tmp_path / "dev.key")))
    yield j
    j.close()


def transactions(j):
    return [r for r in j.records() if r.type == record.TYPE_TRANSACTION]


def refusal(svc, obj):
    with pytest.raises(Refused) as info:
        svc.submit(obj)
    return info.value


def test_same_content_returns_the_original_receipt_and_writes_nothing(journal):
    svc = IntakeService(journal)
    first = svc.submit(sale("T-1"))
    before = journal.stats()["next_seq"]
    again = svc.submit(sale("T-1"))
    assert again["duplicate"] and again["receipt_code"] == first["receipt_code"]
    assert journal.stats()["next_seq"] == before


def test_different_content_is_a_conflict(journal):
    svc = IntakeService(journal)
    svc.submit(sale("T-1"))
    before = journal.stats()["next_seq"]
    exc = refusal(svc, sale("T-1", amount=999))
    assert (exc.code, exc.field) == ("conflict", "pos_txn_id")
    assert journal.stats()["next_seq"] == before


def test_receipt_rebuilt_after_restart_verifies(journal, tmp_path):
    svc = IntakeService(journal)
    results = [svc.submit(sale("T-%d" % i)) for i in range(5)]
    journal.close()
    j2 = JournalFile.open(str(tmp_path / "j.dzj"),
                          load_signer(str(tmp_path / "dev.key")))
    try:
        svc2 = IntakeService(j2)            # a fresh index, no receipt cache
        again = svc2.submit(sale("T-3"))
        assert again["duplicate"] and again["seq"] == results[3]["seq"]
        assert again["receipt_code"] == results[3]["receipt_code"]
        verify_code(again["receipt_code"], str(tmp_path / "dev.pub"))
        assert refusal(svc2, sale("T-3", amount=1)).code == "conflict"
    finally:
        j2.close()


def test_concurrent_resubmissions_commit_once(journal):
    svc = IntakeService(journal)
    out, errors = [], []

    def go(amount):
        try:
            out.append(svc.submit(sale("T-race", amount=amount)))
        except Refused as exc:
            errors.append(exc.code)

    threads = [threading.Thread(target=go, args=(1250 if i % 2 else 1251,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(transactions(journal)) == 1
    assert len(out) == 8 and len(errors) == 8 and set(errors) == {"conflict"}
    assert len({r["seq"] for r in out}) == 1


def test_refund_void_reversal_need_a_known_original(journal):
    svc = IntakeService(journal)
    for kind in ("refund", "void", "reversal"):
        exc = refusal(svc, sale("X-" + kind, kind=kind, original_pos_txn_id="T-none"))
        assert (exc.code, exc.field) == ("original_unknown", "original_pos_txn_id")
    svc.submit(sale("T-1"))
    assert svc.submit(sale("R-1", kind="refund", original_pos_txn_id="T-1"))["seq"] > 0
    assert len(transactions(journal)) == 2


def test_payment_data_refused_and_not_journaled(journal):
    logged = []
    svc = IntakeService(journal, log=lambda event, **f: logged.append((event, f)))
    assert refusal(svc, sale("T-1", note="4111 1111 1111 1111")).code == "pan_refused"
    assert refusal(svc, sale("T-1", cvv="123")).code == "cvv_refused"
    assert transactions(journal) == []
    assert "4111" not in repr(logged)


def test_merchant_mismatch_with_profile(journal):
    svc = IntakeService(journal, profile={"merchant_id": MERCHANT_ID, "terminal_id": TERMINAL_ID})
    assert svc.submit(sale("T-1"))["seq"] > 0
    assert refusal(svc, sale("T-2", terminal_id="OTHER001")).code == "merchant_mismatch"


def test_journal_full_refuses_clearly_and_raises_a_critical_alert(tmp_path):
    generate_keypair(str(tmp_path / "dev"))
    path = str(tmp_path / "small.dzj")
    create_journal(path, "pos-f", size=4096 + 2 * 8192, segment_size=8192)
    alerts = []
    j = JournalFile.open(path, load_signer(str(tmp_path / "dev.key")))
    try:
        svc = IntakeService(j, alert_hook=lambda *a: alerts.append(a))
        committed = []
        with pytest.raises(Refused) as info:
            for i in range(1000):
                committed.append(svc.submit(sale("T-%d" % i))["seq"])
        assert info.value.code == "journal_full"
        assert alerts and alerts[0][:2] == ("journal_full", "critical")
        seqs = {r.seq for r in transactions(j)}
        assert set(committed) <= seqs and len(seqs) == len(committed)  # nothing dropped, nothing extra
        assert refusal(svc, sale("T-more")).code == "journal_full"
    finally:
        j.close()


def test_sales_leave_a_segment_for_settlement_acks_and_alerts(tmp_path):
    """Sales stop one segment early: what lets the journal drain (settlement
    acks, alerts, cursor commits) still fits after the POS is refused."""
    from daozhang.agent.core.journal import record
    generate_keypair(str(tmp_path / "dev"))
    path = str(tmp_path / "small.dzj")
    create_journal(path, "pos-r", size=4096 + 4 * 8192, segment_size=8192)
    j = JournalFile.open(path, load_signer(str(tmp_path / "dev.key")))
    try:
        svc = IntakeService(j, alert_hook=lambda *a: None)
        with pytest.raises(Refused) as info:
            for i in range(1000):
                svc.submit(sale("T-%d" % i))
        assert info.value.code == "journal_full"
        assert j.ring.spare_segments() == 0       # refused by the reserve, not by the ring
        # System records still fit (about half a segment of them here: each
        # commit ends on a 512-byte sector, SPEC 3.9).
        for k in range(3):
            j.append(record.TYPE_SETTLEMENT_ACK, {"ack": bytes(200), "checks": []})
            j.append(record.TYPE_ALERT, {"kind": "journal_full", "state": "firing", "k": k})
    finally:
        j.close()
