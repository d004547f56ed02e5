"""`daozhang device pull` at the shipped geometry (issue 10: boards/generic-linux.toml,
a 64 MiB journal in 1 MiB segments with 4 KiB sectors), beside the small-segment
tests in test_pull_pty.py: the records lie deep in 1 MiB segments (past the
256 KiB read that once broke the sync reader), the cable is cut deep inside a
segment, and the resumed pull ends byte-identical and verified.
"""

import json
import os

import pytest

from daozhang.agent.core.journal import layout, record
from daozhang.agent.service_port import ServicePort
from daozhang.cli.main import main
from daozhang.host_tools.usb import pull as pulling
from dztest.usb import PtyCable, write_key_pair, write_signed_journal

pytestmark = pytest.mark.timeout(300)

KiB = 1024
SEGMENT_SIZE = 1024 * KiB      # boards/generic-linux.toml journal.segment_size
SEGMENT_COUNT = 64             # 64 MiB journal.size
SECTOR_SIZE = 4 * KiB          # journal.sector_size
DEVICE_ID = "dev-usb-shipped"


def _record_positions(data):
    """(segment index, offset in segment) of every record frame in a raw journal image."""
    positions = []
    for index in range(SEGMENT_COUNT):
        base = layout.SUPERBLOCK_SIZE + index * SEGMENT_SIZE
        segment = data[base:base + SEGMENT_SIZE]
        off = layout.SEGMENT_HEADER_SIZE
        while off < len(segment):
            rec = record.decode_at(segment, off)
            if rec is None:
                break
            positions.append((index, off))
            off += rec.size
    return positions


def _pull(tool_path, key, out_dir, pubkey):
    """The CLI as a technician runs it; (exit code, the last JSON line)."""
    argv = ["device", "pull", "--port", tool_path, "--key", key, "--out", out_dir,
            "--device-pubkey", pubkey, "--json", "--timeout", "2"]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    return exit_.value.code


def test_pull_of_a_shipped_journal_cut_deep_in_a_segment_resumes_and_verifies(tmp_path, capsys):
    write_key_pair(str(tmp_path / "tech"))
    device_key = write_key_pair(str(tmp_path / "device"))
    journal_path = str(tmp_path / "journal.dzj")
    # 8,000 records of 100-300 bytes in 4 KiB-padded commits of 10: about 2.5 segments.
    data = write_signed_journal(journal_path, str(tmp_path / "device.key"), SEGMENT_SIZE,
                                SEGMENT_COUNT, DEVICE_ID, batches=800, sector_size=SECTOR_SIZE)
    assert len(data) == layout.SUPERBLOCK_SIZE + SEGMENT_SIZE * SEGMENT_COUNT
    positions = _record_positions(data)
    segments_used = {index for index, _ in positions}
    deep = [p for p in positions if p[1] > 256 * KiB]
    assert len(segments_used) >= 2 and len(deep) > 1000, (segments_used, len(deep))

    cable = PtyCable(seed=10)
    port = ServicePort(
        cable.device_fd, journal_path, DEVICE_ID, [str(tmp_path / "tech.pub")],
        callbacks={"info": lambda: {"backlog": 0, "journal_range": [0, len(positions)],
                                    "device_pubkey": device_key.public_key().public_bytes_raw()},
                   "alerts": lambda: [], "health": lambda: {"sync": "ok"}},
        silence=0.2, reopen_delay=0.05).start()
    out_dir = str(tmp_path / "out")
    try:
        # The cable comes out about 600 KiB into segment 0 (bytes both ways count).
        cable.plug(cut_after=4096 + 600 * KiB)
        assert _pull(cable.tool_path, str(tmp_path / "tech.key"), out_dir,
                     str(tmp_path / "device.pub")) == 2
        state = json.load(open(os.path.join(out_dir, pulling.STATE_FILE)))
        assert state["segments"] == {} and state["partial"]["index"] == 0
        assert state["partial"]["offset"] > 256 * KiB, state["partial"]
        capsys.readouterr()

        cable.plug()
        assert _pull(cable.tool_path, str(tmp_path / "tech.key"), out_dir,
                     str(tmp_path / "device.pub")) == 0
        result = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert result["intact"] is True and result["findings"] == []
        assert result["resumed"] is True and result["pulled_segments"] == SEGMENT_COUNT
        # The resumed run fetched only what the cut one had not.
        assert result["pulled_bytes"] < len(data) - 256 * KiB
        with open(os.path.join(out_dir, pulling.JOURNAL_FILE), "rb") as f:
            assert f.read() == data
        report = pulling.verify_pulled_journal(os.path.join(out_dir, pulling.JOURNAL_FILE),
                                               [str(tmp_path / "device.pub")])
        assert report.ok and report.records == len(positions), [f.describe() for f in report.findings]
        assert port.faults == 0
    finally:
        port.stop()
        cable.close()
    with open(journal_path, "rb") as f:
        assert f.read() == data          # the device's journal is untouched
