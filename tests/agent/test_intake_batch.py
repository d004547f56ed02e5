"""The intake's batch path (issue 11): IntakeService.submit_many on a real
journal, and the selector server answering a pipelining client in order."""

import os
import socket
import struct
import tempfile

import pytest

from daozhang.agent.core.intake import intake_frames as frames
from daozhang.agent.core.journal import record
from daozhang.agent.intake import IntakeServer
from daozhang.agent.intake_service import IntakeService, Refused
from daozhang.agent.journal_file import JournalFile, create_journal
from daozhang.agent.receipt import verify_code
from daozhang.signing import generate_keypair, load_signer
from dztest.agent_daemon import sale

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def journal(tmp_path):
    generate_keypair(str(tmp_path / "dev"))
    path = str(tmp_path / "j.dzj")
    create_journal(path, "pos-b", size=1 << 20, segment_size=64 << 10)
    j = JournalFile.open(path, load_signer(str(tmp_path / "dev.key")))
    yield j
    j.close()


def _sales(j):
    return [r for r in j.records() if r.type == record.TYPE_TRANSACTION]


def test_one_batch_is_one_commit_and_each_item_gets_its_own_answer(journal, tmp_path):
    svc = IntakeService(journal)
    svc.submit(sale("OLD-1"))
    commits = journal.commits
    out = svc.submit_many([
        sale("B-1"),
        sale("B-2", amount=-5),                                     # invalid: refused alone
        sale("B-3"),
        sale("B-1"),                                                # same content: a resubmission
        sale("B-3", amount=999),                                    # other content: a conflict
        sale("R-1", kind="refund", original_pos_txn_id="B-1"),      # original earlier in the batch
        sale("R-2", kind="refund", original_pos_txn_id="NONE"),     # original unknown
        sale("R-3", kind="refund", original_pos_txn_id="OLD-1"),    # original in an earlier commit
    ])
    ok = [o for o in out if not isinstance(o, Refused)]
    assert [type(o).__name__ for o in out] == ["dict", "Refused", "dict", "dict", "Refused",
                                               "dict", "Refused", "dict"]
    assert out[1].code == "bad_value" or out[1].field == "amount"
    assert (out[4].code, out[6].code) == ("conflict", "original_unknown")
    assert out[3]["duplicate"] and out[3]["seq"] == out[0]["seq"]
    assert out[3]["receipt_code"] == out[0]["receipt_code"]
    assert journal.commits == commits + 1                 # B-1, B-3, R-1, R-3 in one commit
    fresh = [o for o in ok if not o["duplicate"]]
    assert [o["seq"] for o in fresh] == sorted(o["seq"] for o in fresh)
    for o in ok:
        verify_code(o["receipt_code"], str(tmp_path / "dev.pub"))
    assert [r.payload["pos_txn_id"] for r in _sales(journal)] == ["OLD-1", "B-1", "B-3", "R-1", "R-3"]
    # The index has them: a later resubmission finds each.
    assert svc.submit(sale("R-1", kind="refund", original_pos_txn_id="B-1"))["duplicate"]


def test_a_batch_bigger_than_a_quarter_segment_is_split_into_commits(journal):
    svc = IntakeService(journal)
    commits = journal.commits
    note = "m" * 120
    out = svc.submit_many([sale("S-%03d" % i, note=note) for i in range(200)])
    assert all(not isinstance(o, Refused) for o in out), [o for o in out if isinstance(o, Refused)][:2]
    assert 1 < journal.commits - commits < 200
    assert [o["seq"] for o in out] == sorted(o["seq"] for o in out)
    assert len(_sales(journal)) == 200


def test_refused_whole_when_the_agent_is_stopping(journal):
    svc = IntakeService(journal)
    svc.accepting = False
    out = svc.submit_many([sale("Z-1"), sale("Z-2")])
    assert [o.code for o in out] == ["shutting_down"] * 2
    assert _sales(journal) == []


def _read_answers(sock, count):
    buf, answers = b"", []
    while len(answers) < count:
        chunk = sock.recv(65536)
        assert chunk, "closed after %d answers" % len(answers)
        buf += chunk
        while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
            n = struct.unpack(">I", buf[:4])[0]
            answers.append(frames.decode_body(buf[4:4 + n]))
            buf = buf[4 + n:]
    return answers


def test_a_pipelining_client_gets_every_answer_in_order(journal):
    """200 requests (submits, pings, a malformed one) written at once, more
    than a frame's worth: the server reads on as it answers, in order."""
    svc = IntakeService(journal)
    path = os.path.join(tempfile.mkdtemp(prefix="dzb"), "intake.sock")
    srv = IntakeServer(svc, path, frame_timeout=30, idle_timeout=60)
    srv.start()
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(path)
        wire, want = b"", []
        for i in range(200):
            if i % 10 == 3:
                wire += frames.encode({"v": 1, "id": i, "op": "ping"})
            elif i == 57:
                wire += frames.encode({"v": 1, "id": i, "op": "nonsense"})
            else:
                wire += frames.encode({"v": 1, "id": i, "op": "submit",
                                       "txn": sale("P-%03d" % i, note="p" * 250)})
            want.append(i)
        assert len(wire) > frames.MAX_FRAME
        s.sendall(wire)
        answers = _read_answers(s, 200)
        assert [a["id"] for a in answers] == want
        assert not answers[57]["ok"]
        assert all(a["ok"] for k, a in enumerate(answers) if k != 57)
        seqs = [a["result"]["seq"] for a in answers if a["ok"] and "seq" in a["result"]]
        assert seqs == sorted(seqs) and len(seqs) == 179
        s.close()
    finally:
        srv.stop_accepting()
        assert srv.drain(5) == 0
    assert len(_sales(journal)) == 179
