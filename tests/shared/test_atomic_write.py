"""daozhang.files.atomic_write: the one whole-file writer.

Invariants: a reader sees the old bytes or the new ones, never a mix; a
durable write fsyncs the file before the rename and the directory after it;
a non-durable one never fsyncs; a failed write leaves the old file and no
temporary file behind.
"""

import os
import signal
import stat
import subprocess
import sys

import pytest

from daozhang import files
from daozhang.files import atomic_write


def _recorder(monkeypatch):
    """Log ("fsync", "file"|"dir") and ("replace",) in the order they happen."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace",))
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace)
    return events


def test_durable_write_fsyncs_the_file_then_renames_then_fsyncs_the_directory(tmp_path, monkeypatch):
    events = _recorder(monkeypatch)
    path = tmp_path / "anchor"
    atomic_write(str(path), b"new bytes", durable=True)
    assert events == [("fsync", "file"), ("replace",), ("fsync", "dir")]
    assert path.read_bytes() == b"new bytes"
    assert not os.path.exists(str(path) + ".tmp")


def test_a_non_durable_write_renames_without_any_fsync(tmp_path, monkeypatch):
    events = _recorder(monkeypatch)
    path = tmp_path / "status.json"
    atomic_write(str(path), "状态 ok\n", durable=False)
    assert events == [("replace",)]
    assert path.read_text(encoding="utf-8") == "状态 ok\n"


def test_chunks_are_streamed_and_the_mode_is_the_one_asked(tmp_path):
    path = tmp_path / "journal.bin"
    old = os.umask(0o022)
    try:
        atomic_write(str(path), (bytes([i]) * 100000 for i in range(5)), mode=0o640)
    finally:
        os.umask(old)
    data = path.read_bytes()
    assert len(data) == 500000 and data[0] == 0 and data[-1] == 4
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("old")

    def chunks():
        yield b"half of the new"
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(str(path), chunks())
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_missing_directory_is_an_oserror_and_creates_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write(str(tmp_path / "no-such-dir" / "f"), b"x")
    assert os.listdir(tmp_path) == []


_WRITER = """
import sys
from daozhang.files import atomic_write
path = sys.argv[1]
i = 0
sys.stdout.write("ready\\n"); sys.stdout.flush()
while True:
    i += 1
    atomic_write(path, (b"%08d" % i) * 4096, durable=False)
"""


@pytest.mark.slow
def test_a_sigkilled_writer_leaves_one_whole_version(tmp_path):
    """Real parts: a writer killed mid-loop; the file is some whole version."""
    path = tmp_path / "f"
    atomic_write(str(path), b"%08d" % 0 * 4096)
    for _ in range(5):
        child = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE)
        assert child.stdout.readline() == b"ready\n"
        # Each whole write takes a while; the kill lands after the first
        # few writes wherever it happens to (no sleep needed for that).
        while path.read_bytes()[:8] == b"%08d" % 0:
            pass
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        data = path.read_bytes()
        assert len(data) == 8 * 4096
        assert data == data[:8] * 4096, "a torn file: two versions mixed"
