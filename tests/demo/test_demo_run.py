"""`daozhang demo` as a user runs it: a real subprocess with real mosquitto,
backend and agent.

- 30 s, not a TTY (as in CI): exit 0; the JSON summary shows sales synced,
  settled, alerts fired and resolved; the plain output has one event per
  line; nothing it started is left running.
- In a real terminal (pty): the live screen, then Ctrl-C: a clean stop, the
  summary, nothing left running.
- Without mosquitto: one line naming the install command, exit 2, nothing
  left behind.

"Nothing left running" is checked by pid and, against pid reuse, by scanning
every process's command line for the demo's workdir.
"""

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time

import pytest

from dztest.broker import mosquitto_path

DEMO = [sys.executable, "-m", "daozhang", "demo"]


def processes_mentioning(text):
    """pids of live processes whose command line contains `text`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmdline:
            found.append((int(name), cmdline))
    return found


def assert_gone(pids, workdir):
    for pid in pids:
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmdline = f.read().decode("utf-8", "replace")
        except OSError:
            continue                      # gone
        assert str(workdir) not in cmdline, "pid %d still running: %s" % (pid, cmdline)
    assert processes_mentioning(str(workdir)) == []


@pytest.fixture
def mosquitto():
    return mosquitto_path()               # skips without mosquitto (fails under CI)


@pytest.mark.timeout(150)
def test_demo_for_30_seconds_not_a_tty(mosquitto, tmp_path):
    workdir = tmp_path / "demo"
    proc = subprocess.run(DEMO + ["--duration", "30", "--workdir", str(workdir), "--json"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=140)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["reason"] == "duration"
    assert summary["transactions"] >= 20
    assert summary["synced"] >= summary["transactions"] - 2       # the last sale may be in flight
    assert summary["settled"] >= 10
    assert summary["alerts_fired"] >= 1
    assert summary["alerts_resolved"] >= 1
    # The terminal itself found what the acquirer injected.
    for kind in ("late", "short", "over_fee", "mcc_jump", "region_jump"):
        assert summary["discrepancies"][kind] >= 1, (kind, summary["discrepancies"])
        assert summary["discrepancies"][kind] <= summary["injected"].get(kind, 0)
    assert len(summary["pids"]) == 3
    # Plain output: one event per line, then the human summary.
    lines = proc.stderr.splitlines()
    assert any(line.startswith("[") and " alert " in line and "firing" in line for line in lines)
    assert any(line.startswith("[") and " alert " in line and "resolved" in line for line in lines)
    assert any(line.startswith("[") and " settle " in line for line in lines)
    assert "\x1b[" not in proc.stderr                           # no terminal codes in a log
    assert any(line.startswith("  alerts ") for line in lines)
    assert_gone(summary["pids"], workdir)


def _read_until(fd, buf, predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate(buf):
        left = deadline - time.monotonic()
        if left <= 0:
            return buf, False
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:           # EIO: the child closed the terminal
                return buf, predicate(buf)
            if not data:
                return buf, predicate(buf)
            buf += data
    return buf, True


@pytest.mark.timeout(120)
def test_live_screen_and_ctrl_c_in_a_terminal(mosquitto, tmp_path):
    workdir = tmp_path / "demo"
    pid, fd = pty.fork()
    if pid == 0:                                      # the child: a terminal user
        os.environ.update({"COLUMNS": "120", "LINES": "60", "TERM": "xterm"})
        # As a login shell leaves it: a suite started in the background of a
        # non-interactive shell (`cmd &`) ignores SIGINT, and an ignored
        # signal stays ignored across exec, so the demo would never see Ctrl-C.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execv(sys.executable, DEMO + ["--duration", "0", "--workdir", str(workdir)])
    try:
        buf, ok = _read_until(fd, b"", lambda b: b"paid out" in b, 60)
        assert ok, buf.decode("utf-8", "replace")[-3000:]
        # The demo shop is a CNY profile: the screen is in its language, zh-CN.
        assert "发生了什么".encode() in buf and "按 Ctrl-C 可安全停止演示".encode() in buf
        os.write(fd, b"\x03")                         # Ctrl-C, as the terminal sends it
        buf, ok = _read_until(fd, buf, lambda b: b"  stopped " in b, 60)
        assert ok, buf.decode("utf-8", "replace")[-3000:]
        _, status = os.waitpid(pid, 0)
        pid = None
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    text = buf.decode("utf-8", "replace")
    assert "stopped by Ctrl-C" in text
    assert "agent stopped (exit 0)" in text and "mosquitto stopped (exit 0)" in text
    assert_gone([], workdir)


def test_missing_mosquitto_one_line_and_exit_2(tmp_path):
    workdir = tmp_path / "demo"
    env = dict(os.environ, PATH=str(tmp_path),
               DAOZHANG_MOSQUITTO=str(tmp_path / "no-such" / "mosquitto"))
    proc = subprocess.run(DEMO + ["--duration", "5", "--workdir", str(workdir)], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("daozhang: ") and "sudo apt-get install mosquitto" in lines[0]
    assert not workdir.exists()
