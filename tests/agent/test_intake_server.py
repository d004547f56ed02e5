"""The intake socket server (agent/intake.py) against a stand-in service.

One selector thread keeps every connection's frame and idle deadlines; these
tests pin down that the timeouts still end a stalled connection, and only then.
"""

import os
import socket
import struct
import tempfile
import threading

import pytest

from daozhang.agent.core.intake import intake_frames as frames
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

    def commit_many(self, txns):
        out = []
        for txn in txns:
            try:
                out.append(self.submit(txn))
            except Refused as exc:
                out.append(exc)
        return out, lambda: None


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


# -- slow and idle clients never lock out the POS (issue 12) ------------------------

def _connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    return s


def _ping(s, request_id):
    s.sendall(frames.encode({"v": 1, "id": request_id, "op": "ping"}))
    reply = b""
    while len(reply) < 4 or len(reply) < 4 + struct.unpack(">I", reply[:4])[0]:
        chunk = s.recv(65536)
        if not chunk:
            return None
        reply += chunk
    return frames.decode_body(reply[4:])


def test_a_frame_trickled_byte_by_byte_is_cut_at_its_deadline(server):
    """The frame timeout is per frame, not per read: a client that sends one
    byte at a time, each well inside the timeout, is closed all the same."""
    s = _connect(server.path)
    body = b'{"v":1,"id":1,"op":"ping"' + b" " * 200 + b"}"
    data = struct.pack(">I", len(body)) + body
    closed = threading.Event()
    for i in range(len(data)):       # about 22 s at this pace: far past 0.3 s
        try:
            s.sendall(data[i:i + 1])
        except OSError:
            closed.set()
            break
        if closed.wait(0.1):
            break
        s.settimeout(0.0001)
        try:
            if s.recv(1) == b"":
                closed.set()
        except (BlockingIOError, socket.timeout):
            pass
        s.settimeout(30)
    assert closed.is_set(), "the whole frame went through: no per-frame deadline"
    s.close()
    assert any(e == "intake_frame_timeout" for e, _ in server.events)


def _small_server(tmp_path, **limits):
    events = []
    path = os.path.join(tempfile.mkdtemp(prefix="dzi"), "intake.sock")
    srv = IntakeServer(FakeService(), path, log=lambda e, **f: events.append((e, f)),
                       frame_timeout=30, idle_timeout=300, **limits)
    srv.start()
    srv.events = events
    return srv


def test_idle_connections_give_way_to_the_pos(tmp_path):
    """Every slot held by an idle client: the POS still connects and is
    served; the client idle the longest is the one closed."""
    srv = _small_server(tmp_path, max_connections=8, max_per_identity=8)
    try:
        hogs = [_connect(srv.path) for _ in range(8)]
        for i, h in enumerate(hogs):
            assert _ping(h, i)["ok"]            # each has been served: now idle
        pos = _connect(srv.path)
        assert _ping(pos, 99)["result"]["pong"] is True
        assert _recv_until_closed(hogs[0]) == b""   # the idlest one made room
        assert [e for e, _ in srv.events].count("intake_evicted_idle") == 1
        for h in hogs:
            h.close()
        pos.close()
    finally:
        srv.stop_accepting()
        srv.drain(5)


def test_clients_mid_frame_are_not_evicted_the_newcomer_is_busy(tmp_path):
    srv = _small_server(tmp_path, max_connections=4, max_per_identity=4)
    try:
        hogs = [_connect(srv.path) for _ in range(4)]
        for i, h in enumerate(hogs):
            assert _ping(h, i)["ok"]
            h.sendall(struct.pack(">I", 100) + b"{")   # a frame under way
        # The server's threads mark a connection busy once they read its bytes.
        pause = threading.Event()
        for _ in range(1000):
            with srv._lock:
                if all(c.idle_since is None for c in srv._conns.values()):
                    break
            pause.wait(0.01)
        late = _connect(srv.path)
        reply = _recv_until_closed(late)
        assert frames.decode_body(reply[4:])["error"]["code"] == "busy"
        assert not any(e == "intake_evicted_idle" for e, _ in srv.events)
        for h in hogs:
            h.close()
        late.close()
    finally:
        srv.stop_accepting()
        srv.drain(5)


def test_one_identity_is_capped_and_makes_room_among_its_own(tmp_path):
    """All test clients share this uid: past its cap, its own idlest
    connection is closed; the total stays under the identity's cap."""
    srv = _small_server(tmp_path, max_connections=16, max_per_identity=3)
    try:
        clients = []
        for i in range(6):
            c = _connect(srv.path)
            assert _ping(c, i)["ok"]
            clients.append(c)
        with srv._lock:                  # served (not evicted) connections: the cap itself
            assert sum(not c.evicted for c in srv._conns.values()) == 3
        for c in clients[:3]:
            assert _recv_until_closed(c) == b""
        # An evicted connection leaves srv.connections when its own thread reads
        # end-of-stream, before it closes the socket: after the three closes above,
        # exactly the identity's cap is held (not before: that thread may not have run yet).
        assert srv.connections == 3
        assert [e for e, f in srv.events if e == "intake_evicted_idle"
                and f["reason"] == "identity"] == ["intake_evicted_idle"] * 3
        for c in clients:
            c.close()
    finally:
        srv.stop_accepting()
        srv.drain(5)
