"""A long first start (indexing a whole journal) keeps asking systemd for
more time, so TimeoutStartSec does not kill an agent that is progressing."""

import os

from daozhang.agent.core.journal import record
from daozhang.agent.journal_file import JournalFile
from daozhang.signing import load_signer
from daozhang.agent.startup_progress import CHECK_EVERY, NOTIFY_EVERY_S, StartupProgress
from dztest.agent_daemon import AgentProcess, provision
from dztest.sync import txn_payload


def test_notifies_on_progress_at_most_every_few_seconds():
    sent, now = [], [100.0]
    progress = StartupProgress("intake", notify=sent.append, clock=lambda: now[0])
    for seq in range(CHECK_EVERY * 3):
        progress.record(seq)
    assert len(sent) == 1                         # throttled: the clock did not move
    assert sent[0].startswith("EXTEND_TIMEOUT_USEC=60000000\nSTATUS=indexing the journal (intake)")
    now[0] += NOTIFY_EVERY_S
    for seq in range(CHECK_EVERY):
        progress.record(seq)
    assert len(sent) == 2 and "%d records" % (CHECK_EVERY * 4) in sent[1]


def test_a_daemon_indexing_a_journal_extends_its_start_timeout(tmp_path):
    config, sock, _ = provision(tmp_path, journal_size="16MiB", segment_size="256KiB")
    dev = os.path.dirname(config)
    journal_path = os.path.join(dev, "journal.dzj")
    with JournalFile.open(journal_path, load_signer(os.path.join(dev, "device.key"))) as j:
        for start in range(0, CHECK_EVERY + 500, 500):
            j.append_many([(record.TYPE_TRANSACTION, txn_payload(k)) for k in range(start, start + 500)])
    agent = AgentProcess(config, config + ".log")
    try:
        agent.start(timeout=120)
        ready = agent.notify.wait_for("READY=1")
        extend = agent.notify.wait_for("EXTEND_TIMEOUT_USEC=")
        assert extend < ready                      # asked for time while it indexed
        assert "indexing the journal" in agent.notify.messages[extend]
        assert agent.terminate() == 0
    finally:
        agent.close()
