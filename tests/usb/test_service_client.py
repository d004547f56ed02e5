"""The laptop's ServiceClient against scripted device bytes (no port)."""

import pytest

from daozhang.agent.core.service.service_frames import ERROR, NAK, RESPONSE, Frame, FrameCodec
from daozhang.host_tools.usb.service_client import DeviceRefused, LinkLost, ServiceClient


class Scripted:
    """Answers each write with the next scripted blob (b"" = silence)."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.writes = []
        self.pending = b""

    def write(self, data):
        self.writes.append(data)
        if self.replies:
            self.pending += self.replies.pop(0)

    def read(self, timeout):
        data, self.pending = self.pending, b""
        return data


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        self.t += 0.25  # every look at the clock moves time on, so timeouts happen
        return self.t


def test_stale_answers_and_garbage_in_one_big_read_are_skipped():
    dev = FrameCodec(max_payload=512)
    stale = b"".join(dev.send(Frame(RESPONSE, s, {"data": b"s" * 400})) for s in range(1, 9))
    blob = stale + b"\x00" * 700 + dev.send(Frame(RESPONSE, 42, {"data": b"ok"}))
    assert len(blob) > 2 * dev.max_frame
    client = ServiceClient(Scripted([blob]), max_payload=512, first_seq=41, clock=Clock())
    assert client.request("info") == {"data": b"ok"}
    assert client.counters["naks_sent"] >= 1


def test_nak_resends_the_same_bytes_and_error_raises_with_its_code():
    dev = FrameCodec()
    transport = Scripted([dev.send(Frame(NAK, 0, {"reason": "crc"})),
                          dev.send(Frame(ERROR, 8, {"code": "auth_required", "message": "m"}))])
    client = ServiceClient(transport, first_seq=7, clock=Clock())
    with pytest.raises(DeviceRefused) as exc:
        client.request("health")
    assert exc.value.code == "auth_required"
    assert transport.writes[0] == transport.writes[1]


def test_silence_resends_then_gives_up_with_link_lost():
    transport = Scripted([])
    client = ServiceClient(transport, timeout=1.0, tries=3, clock=Clock())
    with pytest.raises(LinkLost) as exc:
        client.request("info")
    assert "after 3 tries" in str(exc.value) and exc.value.exit_code == 2
    assert len(transport.writes) == 3 and len(set(transport.writes)) == 1
