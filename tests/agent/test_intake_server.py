"""The intake socket server (agent/intake.py) against a stand-in service.

The server keeps its sockets blocking and lets the kernel enforce the frame
and idle timeouts (SO_RCVTIMEO / SO_SNDTIMEO); these tests pin down that the
timeouts still end a stalled connection, and only then.
"""

import os
import socket
import struct
import tempfile
import threading

import pytest

from daozhang.agent.core import intake_frames as frames
from daozhang.agent.intake import IntakeServer
from daozhang.agent.intake_service import Refused
from daozhang.client import Client, Refused as ClientRefused

pytestmark = pytest.mark.timeout(60)


class FakeService:
    dev = "pos-fake"

    def __init__(self):
        self.seen = []

    def submit(self, txn):
        if txn.get("refuse"):
            raise Refused("bad_format", "refused on request", "refuse")
        self.seen.append(txn)
        return {"seq": len(self.seen)}


@pytest.fixture
def server():
    events = []
    lock = threading.Lock()

    def log(event, **fields):
        with lock:
            events.append((event, fields))

    path = os.path.join(tempfile.mkdtemp(prefix="dzi"), "intake.sock")
    srv = IntakeServer(FakeService(), path, log=log, frame_timeout=0.3, idle_timeout=0.6)
    srv.start()
    srv.events = events
    yield srv
    srv.stop_accepting()
    srv.drain(5)


def _recv_until_closed(sock):
    out = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk


def test_requests_answered_in_order_on_one_connection(server):
    with Client(server.path, timeout=10) as c:
        assert [c.submit({"n": i})["seq"] for i in range(1, 6)] == [1, 2, 3, 4, 5]
        assert c.ping()["pong"] is True
        with pytest.raises(ClientRefused) as info:
            c.submit({"refuse": True})
        assert info.value.code == "bad_format" and info.value.field == "refuse"
        assert c.submit({"n": 6})["seq"] == 6          # the connection stays usable


def test_half_sent_frame_is_closed_after_the_frame_timeout(server):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(server.path)
    body = b'{"v":1,"id":1,"op":"ping"}'
    s.sendall(struct.pack(">I", len(body)) + body[:5])      # then silence
    assert _recv_until_closed(s) == b""                      # closed by the server, no answer
    s.close()
    assert any(e == "intake_frame_timeout" for e, _ in server.events)


def test_idle_connection_is_closed_quietly_after_the_idle_timeout(server):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(server.path)
    body = frames.encode({"v": 1, "id": 7, "op": "ping"})
    s.sendall(body)
    reply = b""
    while len(reply) < 4 or len(reply) < 4 + struct.unpack(">I", reply[:4])[0]:
        reply += s.recv(65536)
    assert frames.decode_body(reply[4:])["id"] == 7
    assert _recv_until_closed(s) == b""                      # idle: closed, nothing sent
    s.close()
    assert not any(e == "intake_frame_timeout" for e, _ in server.events)
