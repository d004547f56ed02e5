"""The agent on a damaged journal (SPEC 3.9): it comes up, alarms and refuses.

Invariant: a committed record damaged in the journal's newest segment makes
the real `daozhang agent run` process come up anyway (READY), log the
`journal_damaged` alert with segment and offset, show it on the console
output, answer every sale with the `journal_damaged` refusal, and leave the
journal byte for byte as it was.
"""

import time

import pytest

from daozhang.agent.core.journal import record
from daozhang.client import Client, Refused
from dztest.agent_daemon import AgentProcess, provision, sale
from dztest.journal_damage import damage_a_committed_sale, segments_in_use


def test_agent_alarms_and_refuses_on_a_damaged_journal(tmp_path):
    config, sock, _ = provision(tmp_path, journal_size="1MiB", segment_size="64KiB")
    agent = AgentProcess(config, str(tmp_path / "agent.log"))
    try:
        agent.start()
        with Client(sock) as conn:
            for i in range(3):
                conn.submit(sale("DMG-%d" % i))
        assert agent.terminate() == 0
        journal = str(tmp_path / "dev" / "journal.dzj")
        damaged = damage_a_committed_sale(journal)
        agent.start()                                   # comes up: no crash loop
        with Client(sock) as conn:
            for i in range(2):
                with pytest.raises(Refused) as info:
                    conn.submit(sale("DMG-after-%d" % i))
                assert info.value.code == "journal_damaged"
        assert agent.proc.poll() is None
        assert agent.terminate() == 0
        log = agent.log_tail(100000)
        assert "event=journal_damaged" in log and "kind=journal_damaged" in log and "segment=" in log
        assert "daozhang alerts: journal damaged" in log
        with open(journal, "rb") as f:
            assert f.read() == damaged                  # nothing written
    finally:
        agent.close()


def damage_oldest_segment(path):
    data, geo, used = segments_in_use(path)
    assert len(used) >= 2
    base = geo.segment_offset(used[0][1])
    rec = record.decode_at(bytes(data[base:base + geo.segment_size]), 96)
    data[base + 96 + rec.size // 2] ^= 0x01
    with open(path, "wb") as f:
        f.write(data)


def test_scrub_finds_rot_in_an_older_segment_and_alerts(tmp_path):
    config, sock, _ = provision(tmp_path, journal_size="1MiB", segment_size="16KiB")
    agent = AgentProcess(config, str(tmp_path / "agent.log"))
    try:
        agent.start()
        with Client(sock) as conn:
            for i in range(40):
                conn.submit(sale("SCR-%d" % i))
        assert agent.terminate() == 0
        damage_oldest_segment(str(tmp_path / "dev" / "journal.dzj"))
        agent.start()                                   # the newest segment is intact: it opens
        # Every line the verdict makes, not just the first: the display line is
        # printed after the alert's log line.
        expected = ("event=journal_damaged", "at=scrub", "kind=journal_damaged",
                    "流水损坏：请联系技术人员")  # the last: the alert engine's display line, in the
                                                  # CNY test profile's locale (zh-CN)
        deadline = time.monotonic() + 60
        while not all(text in agent.log_tail(100000) for text in expected) and time.monotonic() < deadline:
            time.sleep(0.2)                             # polling the log for the scrub's verdict
        log = agent.log_tail(100000)
        assert [text for text in expected if text not in log] == []
        assert agent.proc.poll() is None
        assert agent.terminate() == 0
    finally:
        agent.close()
