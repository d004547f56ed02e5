"""One writer per journal file: a second one would fork the chain."""

import subprocess
import sys

import pytest

from daozhang.agent.journal_file import JournalFile, create_journal
from daozhang.agent.storage import FileStorage, JournalBusy
from dztest.journal_kit import make_signer


@pytest.fixture
def journal_path(tmp_path):
    path = str(tmp_path / "j.dzj")
    create_journal(path, "pos-lock", size=1 << 20, segment_size=64 << 10)
    return path


def test_a_second_writer_is_refused_and_a_reader_is_not(journal_path):
    with JournalFile.open(journal_path, make_signer()):
        with pytest.raises(JournalBusy, match="is the agent running"):
            JournalFile.open(journal_path, make_signer())
        reader = FileStorage(journal_path, readonly=True)
        assert len(reader.pread(0, 16)) == 16
        reader.close()
    with JournalFile.open(journal_path, make_signer(), boot=False) as again:
        assert again.ring.next_seq > 0


def test_the_lock_dies_with_a_killed_writer(journal_path):
    code = ("import sys, os; from daozhang.agent.storage import FileStorage; "
            "s = FileStorage(sys.argv[1]); print('locked', flush=True); sys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", code, journal_path], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(JournalBusy):
            FileStorage(journal_path)
    finally:
        child.kill()
        child.wait()
    FileStorage(journal_path).close()
