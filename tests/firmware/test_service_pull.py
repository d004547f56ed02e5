"""`daozhang device pull` copies a microcontroller terminal's journal over
its USB service port (issue 16; SPEC 8).

The board is the firmware (firmware/service_port.py over the core's
DeviceSession, the pure-Python Ed25519 signer and verifier) on MicroPython's
WebAssembly port (tests/firmware/mp_service_pull.py).  Its USB CDC stream
is a TCP connection through the Node socket bridge, relayed here to a real
pty; the technician's CLI opens the pty as it would /dev/ttyACM0.
Invariant: the pulled journal is the board's journal byte for byte, and the
host verifier accepts what the board signed.
"""

import hashlib
import json
import os
import select
import socket
import subprocess
import threading
import tty

import pytest
from cryptography.hazmat.primitives import serialization

from daozhang.cli.main import main
from daozhang.host_tools.usb import pull as pulling
from dztest.dates import now_ms
from dztest.micropython import MP_DIR, REPO, MicroPythonFailed, micropython_available
from dztest.usb import write_key_pair

pytestmark = pytest.mark.timeout(300)
SCRIPT = os.path.join(REPO, "tests", "firmware", "mp_service_pull.py")


class Relay:
    """One accepted TCP connection (the board's stream) <-> a pty master; the slave is the tool's."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.tool_path = os.ttyname(self.slave)
        self.stop = threading.Event()
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.server.settimeout(120)
        conn, _ = self.server.accept()
        self.connected.set()
        with conn:
            while not self.stop.is_set():
                ready, _, _ = select.select([conn, self.master], [], [], 0.05)
                for r in ready:
                    if r is conn:
                        data = conn.recv(65536)
                        if not data:
                            return
                        os.write(self.master, data)
                    else:
                        try:
                            data = os.read(self.master, 65536)
                        except OSError:
                            continue
                        conn.sendall(data)

    def close(self):
        self.stop.set()
        self.thread.join(10)
        self.server.close()
        os.close(self.master)
        os.close(self.slave)


def test_device_pull_copies_the_boards_journal_over_its_usb_port(tmp_path, capsys):
    if not micropython_available():
        if os.environ.get("CI"):
            raise MicroPythonFailed("MicroPython port missing: run `npm ci --prefix tests/mp`")
        pytest.skip("MicroPython WebAssembly port not installed (npm install --prefix tests/mp)")
    tech = write_key_pair(str(tmp_path / "tech"))
    device = write_key_pair(str(tmp_path / "device"))
    seed = device.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    relay = Relay()
    params = {"device": "mcu-usb-1", "segment_size": 8192, "segments": 4, "journal_id": os.urandom(16).hex(),
              "now_ms": now_ms(), "seed": seed.hex(), "sales": 6, "host": "127.0.0.1", "port": relay.port,
              "tech_pub": tech.public_key().public_bytes_raw().hex()}
    script = str(tmp_path / "board.py")
    with open(SCRIPT) as f, open(script, "w") as out:
        out.write("P = %s\n" % json.dumps(params) + f.read())
    board = subprocess.Popen(["node", os.path.join(MP_DIR, "run_portable.mjs"), REPO, "--script", script],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=MP_DIR,
                             env=dict(os.environ, DZ_SOCKET_BRIDGE="{}"))
    try:
        assert relay.connected.wait(120), board.stderr.read() if board.poll() is not None else "no connection"
        out_dir = str(tmp_path / "out")
        with pytest.raises(SystemExit) as exit_:
            main(["device", "pull", "--port", relay.tool_path, "--key", str(tmp_path / "tech.key"),
                  "--out", out_dir, "--device-pubkey", str(tmp_path / "device.pub"), "--json", "--timeout", "5"])
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    finally:
        relay.close()
        stdout, stderr = board.communicate(timeout=120)
    assert board.returncode == 0, stderr[-3000:]
    said = dict(line.split(" ", 1) for line in stdout.splitlines() if " " in line)
    assert exit_.value.code == 0, lines[-3:]
    assert lines[-1]["event"] == "result" and lines[-1]["intact"] is True
    with open(os.path.join(out_dir, pulling.JOURNAL_FILE), "rb") as f:
        pulled = f.read()
    digest, size = said["IMAGE"].split()
    assert hashlib.sha256(pulled).hexdigest() == digest and len(pulled) == int(size)
    assert int(said["SERVED"].split()[0]) > 3
