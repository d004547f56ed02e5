"""I/O errors (EIO, ENOSPC on write and on fsync), through the real file adapter's logic.

Invariants: the append raises StorageError; nothing is reported committed;
the handle refuses further appends (a failed fsync is never retried and then
reported committed); a reopen recovers a journal holding every record that
was reported committed, and no record that was not.
"""

import errno

import pytest

from daozhang.agent.core.errors import StorageError
from daozhang.agent.core.journal import record, ring_storage
from daozhang.agent.journal_file import JournalFile
from dztest.faulty_storage import FaultyStorage
from dztest.journal_kit import fresh_image, make_signer, read_all

SIGNER = make_signer()


@pytest.mark.parametrize("where", ["write", "sync"])
@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC])
@pytest.mark.parametrize("nth", [2, 5, 9])
def test_io_error_fails_the_append_and_loses_nothing_committed(where, code, nth):
    storage = FaultyStorage(fresh_image(segment_size=8192, segment_count=4))
    journal = JournalFile.open("mem", SIGNER, storage=storage)
    done = storage.writes if where == "write" else storage.syncs
    setattr(storage, "fail_" + where, (done + nth, code))
    committed = {}
    with pytest.raises(StorageError):
        for n in range(50):
            r = journal.append(record.TYPE_TRANSACTION, {"n": n, "memo": "y" * 300})
            committed[r.seq] = r.hash
    # The handle is poisoned: no retry of the failed fsync can report success.
    with pytest.raises(StorageError, match="reopen"):
        journal.append(record.TYPE_TRANSACTION, {"n": "after"})
    storage.fail_write = storage.fail_sync = None
    durable = FaultyStorage(storage.image())
    ring = ring_storage.open_ring(durable)
    found = dict(read_all(durable, ring))
    for seq, rhash in committed.items():
        assert found[seq] == rhash
    reopened = JournalFile.open("mem", SIGNER, storage=durable)
    # After the boot commit (record, padding, checkpoint), no sequence number reused:
    expected = reopened.ring.next_seq
    assert expected > ring.next_seq
    assert reopened.append(record.TYPE_TRANSACTION, {"n": "again"}).seq == expected
