"""Test helpers for the agent daemon: provision, run as a real process, verify.

`provision(tmp)` makes a device directory with a small journal and a socket
under tmp.  `AgentProcess` starts `python -m daozhang agent run` with a real
$NOTIFY_SOCKET, so a test waits for systemd's READY=1 datagram instead of
sleeping, and can read WATCHDOG=1 pings.  `check_journal` verifies a journal
with host_tools' verifier and also with an independent pass over the records
(chain, sequence, checkpoint signatures and batch roots).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from click.testing import CliRunner

from dztest.dates import SALE_TIME

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROFILE = os.path.join(REPO, "examples", "merchant.toml")
MERCHANT_ID = "102290058120001"      # examples/merchant.toml
TERMINAL_ID = "SH000001"


def sale(pos_txn_id, amount=1250, **extra):
    """A valid T1 sale for examples/merchant.toml, dated an hour before the
    test process started (dztest.dates: never overdue, on any date)."""
    txn = {"kind": "sale", "pos_txn_id": pos_txn_id, "time": SALE_TIME,
           "amount": amount, "currency": "CNY", "card": "622588******1234", "card_type": "debit",
           "auth_code": "A1B2C3", "rrn": "123456789012", "merchant_id": MERCHANT_ID,
           "terminal_id": TERMINAL_ID, "mcc": "5812", "settlement": "T1"}
    txn.update(extra)
    return txn


def provision(tmp, journal_size="4MiB", segment_size="64KiB", device_id="pos-test-1"):
    """A provisioned device dir under `tmp`; returns (config path, socket path, pubkey path)."""
    from daozhang.cli.main import cli
    from daozhang.signing import generate_keypair
    tmp = str(tmp)
    backend = os.path.join(tmp, "backend")
    if not os.path.exists(backend + ".pub"):
        generate_keypair(backend)
    out = os.path.join(tmp, "dev")
    # Unix socket paths are limited to 108 bytes: keep it short.
    sock_dir = tempfile.mkdtemp(prefix="dz")
    sock = os.path.join(sock_dir, "intake.sock")
    result = CliRunner().invoke(cli, [
        "device", "provision", "--board", "generic-linux", "--device-id", device_id,
        "--profile", PROFILE, "--backend-pubkey", backend + ".pub", "--out", out,
        "--journal-size", journal_size, "--segment-size", segment_size,
        "--socket", sock, "--socket-group", ""], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # Alerts go to a status file under tmp, not /run.
    return os.path.join(out, "agent.toml"), sock, os.path.join(out, "device.pub")


class NotifySocket:
    """A stand-in for systemd's notify socket: collects datagrams."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="dzn")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            with self._cv:
                self.messages.append(data.decode())
                self._cv.notify_all()

    def wait_for(self, text, timeout=30, after=0):
        """Index of the first message at or after `after` containing `text`."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for i in range(after, len(self.messages)):
                    if text in self.messages[i]:
                        return i
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %r from the agent within %ss (got %r)"
                                         % (text, timeout, self.messages[-5:]))
                self._cv.wait(left)

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class AgentProcess:
    def __init__(self, config, log_path, env=None):
        self.config = config
        self.log_path = log_path
        self.notify = NotifySocket()
        self.env = dict(os.environ, NOTIFY_SOCKET=self.notify.path, PYTHONUNBUFFERED="1")
        self.env.update(env or {})
        self.proc = None

    def start(self, timeout=60):
        after = len(self.notify.messages)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "daozhang", "agent", "run",
                                      "--config", self.config],
                                     stdout=subprocess.DEVNULL, stderr=self._log, env=self.env)
        try:
            self.notify.wait_for("READY=1", timeout, after)
        except AssertionError:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("agent did not start:\n" + self.log_tail())
        return self

    def log_tail(self, n=4000):
        with open(self.log_path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._log.close()

    def terminate(self, timeout=30):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self._log.close()
        return rc

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
        self.notify.close()


def read_records(journal_path, key_path):
    """All committed records, read from a copy (opening recovers; the original stays as is)."""
    from daozhang.agent.journal_file import JournalFile
    from daozhang.signing import load_signer
    tmp = tempfile.mkdtemp(prefix="dzj")
    try:
        copy = os.path.join(tmp, "j")
        shutil.copyfile(journal_path, copy)
        j = JournalFile.open(copy, load_signer(key_path), boot=False)
        try:
            return list(j.records())
        finally:
            j.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_journal(journal_path, pubkey_path, key_path):
    """Verify the journal; return its records.  Raises AssertionError on any problem."""
    with open(pubkey_path, "rb") as f:
        pub_pem = f.read()
    # No fallback when the verifier cannot be imported: a broken verifier
    # must fail the test, not quietly skip the check.
    from daozhang.host_tools.verify.journal import verify_journal
    report = verify_journal(journal_path, [pub_pem], all_signatures=True)
    assert report.ok, [str(f) for f in report.findings][:50]
    records = read_records(journal_path, key_path)
    _independent_check(records, pub_pem)
    return records


def _independent_check(records, pub_pem):
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from daozhang.agent.core.journal import record
    from daozhang.agent.core.journal.checkpoint import batch_root, message_for
    key = load_pem_public_key(pub_pem)
    assert records, "journal holds no records"
    pending = []
    prev = None
    for rec in records:
        if prev is not None:
            assert rec.seq == prev.seq + 1, "sequence gap %d -> %d" % (prev.seq, rec.seq)
            assert rec.prev == prev.hash, "chain broken at %d" % rec.seq
        if rec.type == record.TYPE_CHECKPOINT:
            p = rec.payload
            covered = [r.hash for r in pending if r.seq >= p["first"]]
            if pending and pending[0].seq <= p["first"]:
                assert p["root"] == batch_root(covered), "batch root wrong at %d" % rec.seq
            assert p["alg"] == 1, "unsigned checkpoint at %d" % rec.seq
            key.verify(p["sig"], message_for(p, rec.seq, rec.prev, rec.wall_ms, rec.boot_id, rec.mono_ms))
            pending = []
        else:
            pending.append(rec)
        prev = rec
