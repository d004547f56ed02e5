"""The daemon's event log: one line per event; a commit's lines in one write."""

import io
import threading

from daozhang.agent.daemon import EventLog
from daozhang.agent.intake_service import IntakeService
from daozhang.agent.journal_file import JournalFile, create_journal
from daozhang.signing import generate_keypair, load_signer
from dztest.agent_daemon import sale


class CountingStream(io.StringIO):
    def __init__(self):
        super().__init__()
        self.writes = 0

    def write(self, text):
        self.writes += 1
        return super().write(text)


def test_held_lines_go_out_together_and_other_threads_are_not_held():
    stream = CountingStream()
    log = EventLog(stream)
    with log.hold():
        log("a", n=1)
        with log.hold():                       # nested: still the outer hold's
            log("b", n=2)
        other = threading.Thread(target=log, args=("c",), kwargs={"n": 3})
        other.start()
        other.join()
        assert stream.writes == 1              # only the other thread's line so far
        assert "event=c" in stream.getvalue()
    assert stream.writes == 2
    lines = stream.getvalue().splitlines()
    assert [line.split("event=")[1] for line in lines] == ["c n=3", "a n=1", "b n=2"]
    log("d")
    assert stream.writes == 3


def test_a_commit_of_many_sales_logs_them_in_one_write(tmp_path):
    stream = CountingStream()
    generate_keypair(str(tmp_path / "dev"))
    create_journal(str(tmp_path / "j.dzj"), "pos-log", size=1 << 20, segment_size=64 << 10)
    journal = JournalFile.open(str(tmp_path / "j.dzj"), load_signer(str(tmp_path / "dev.key")))
    try:
        service = IntakeService(journal, log=EventLog(stream))
        before = stream.writes
        out = service.submit_many([sale("LOG-%d" % i) for i in range(16)])
        assert all(isinstance(r, dict) for r in out)
        committed = [line for line in stream.getvalue().splitlines() if "event=txn_committed" in line]
        assert len(committed) == 16
        assert stream.writes - before == 1
    finally:
        journal.close()
