"""The frame codec and session run unchanged on MicroPython and give CPython's bytes.

One fixed exchange (garbage, info, a torn frame, auth, read, segment, a NAK,
a re-sent request, close) is run by the same script on both interpreters;
every byte the device writes back must be identical.
"""

import contextlib
import io

import pytest

from dztest.micropython import run_micropython

pytestmark = pytest.mark.timeout(300)

EXCHANGE = r'''
import hashlib
from daozhang.agent.core.service.service_frames import FrameCodec, Frame, REQUEST, NAK
from daozhang.agent.core.service.service_session import DeviceSession, auth_message

SEG = 8192
class Journal:
    segment_size = SEG
    segment_count = 2
    size = 4096 + 2 * SEG
    def __init__(self):
        self.data = bytes([(i * 7 + 3) % 256 for i in range(self.size)])
    def read(self, offset, length):
        return self.data[offset:offset + length]

calls = [0]
def rnd(n):
    calls[0] += 1
    return bytes([(calls[0] * 31 + i) % 256 for i in range(n)])

# Stand-in for Ed25519 (absent on MicroPython): a "signature" is sha256 twice.
def fake_sign(message):
    d = hashlib.sha256(message).digest()
    return d + d
def verify(pubkey, message, signature):
    return signature == fake_sign(message)

KEY = bytes(range(32))
s = DeviceSession("dev-mp-1", Journal(), verify, [KEY], rnd, max_payload=4096)
c = FrameCodec(4096)

def send(data, now=0):
    out = s.receive_data(data, now)
    print("OUT", s.state, out.hex())
    return out

def answer(out):
    c.receive_data(out)
    ev = c.next_event()
    while not isinstance(ev, Frame):
        ev = c.next_event()
    return ev

send(b"\x00\x01garbage")
send(c.send(Frame(REQUEST, 1, {"cmd": "info"})))
send(c.send(Frame(REQUEST, 2, {"cmd": "read", "offset": 0, "length": 16})))
torn = c.send(Frame(REQUEST, 3, {"cmd": "auth_begin"}))
send(torn[:9])
print("SILENCE", s.on_silence(2).hex())
nonce = answer(send(torn, 3)).payload["nonce"]
again = send(torn, 3)
token = answer(send(c.send(Frame(REQUEST, 4, {"cmd": "auth", "pubkey": KEY,
    "signature": fake_sign(auth_message("dev-mp-1", nonce))})), 4)).payload["session"]
send(c.send(Frame(REQUEST, 5, {"cmd": "read", "session": token, "offset": 4000, "length": 200})), 5)
send(c.send(Frame(REQUEST, 6, {"cmd": "segment", "session": token, "index": 1, "offset": 8000, "length": 500})), 6)
bad = bytearray(c.send(Frame(REQUEST, 7, {"cmd": "health", "session": token})))
bad[18] ^= 4
send(bytes(bad), 7)
send(c.send(Frame(NAK, 0, {"reason": "crc"})), 7)
send(c.send(Frame(REQUEST, 8, {"cmd": "close", "session": token})), 8)
send(c.send(Frame(REQUEST, 9, {"cmd": "segment", "session": token, "index": 0, "offset": 0, "length": 1})), 9)
print("COUNTERS", sorted(s.counters.items()))
'''


def test_micropython_reproduces_cpython_bytes():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(EXCHANGE, "exchange", "exec"), {"__name__": "exchange"})
    cpython = buf.getvalue()
    assert cpython.count("OUT ") == 13 and "authenticated" in cpython
    assert run_micropython(EXCHANGE) == cpython
