"""The intake frame codec (agent/core/intake/intake_frames.py, docs/SPEC.md §5.1)."""

import json
import struct

import pytest
from hypothesis import given, settings, strategies as st

from daozhang.agent.core.errors import LocalError
from daozhang.agent.core.intake import intake_frames as frames
from dztest.micropython import run_micropython


def drain(decoder):
    out = []
    while True:
        ev = decoder.next_event()
        if ev in (frames.NEED_DATA, frames.CLOSED):
            return out, ev
        out.append(ev)


json_objects = st.dictionaries(st.text(max_size=10), st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10), max_size=5)


@settings(max_examples=200, deadline=None)
@given(st.lists(json_objects, min_size=1, max_size=5), st.data())
def test_round_trip_in_any_chunking(objs, data):
    """Invariant: frames split at any points decode to the same objects, in order."""
    stream = b"".join(frames.encode(o) for o in objs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    dec = frames.FrameDecoder()
    got = []
    last = 0
    for cut in cuts + [len(stream)]:
        if cut == last:
            continue          # b"" would mean end of stream (as in h11)
        dec.receive_data(stream[last:cut])
        last = cut
        events, ev = drain(dec)
        got += events
        assert ev == frames.NEED_DATA
    dec.receive_data(b"")
    events, ev = drain(dec)
    assert ev == frames.CLOSED
    assert [m.obj for m in got + events] == objs


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_decoder_raises_only_frame_errors(blob):
    """Invariant: any bytes give messages, NEED_DATA/CLOSED or FrameError; nothing else."""
    for eof in (False, True):
        dec = frames.FrameDecoder(max_frame=256)
        dec.receive_data(blob)
        if eof:
            dec.receive_data(b"")
        try:
            events, _ = drain(dec)
        except frames.FrameError as exc:
            assert exc.code in ("empty_frame", "frame_too_large", "truncated_frame")
            continue
        for m in events:
            if m.error is None:
                assert isinstance(m.obj, dict)
                try:
                    frames.parse_request(m)
                except frames.FrameError as exc:
                    assert exc.code in ("bad_request", "unknown_op", "bad_version")
            else:
                assert m.error.code == "bad_json"


def test_oversized_and_empty_frames_are_fatal():
    dec = frames.FrameDecoder()
    dec.receive_data(struct.pack(">I", frames.MAX_FRAME + 1))
    with pytest.raises(frames.FrameError) as info:
        dec.next_event()
    assert info.value.code == "frame_too_large"
    with pytest.raises(LocalError):
        dec.next_event()       # dead after a fatal error, state unchanged
    dec = frames.FrameDecoder()
    dec.receive_data(b"\0\0\0\0")
    with pytest.raises(frames.FrameError) as info:
        dec.next_event()
    assert info.value.code == "empty_frame"


def test_half_frame_then_eof_is_truncated():
    dec = frames.FrameDecoder()
    dec.receive_data(frames.encode({"id": 1, "op": "ping"})[:-3])
    assert dec.next_event() == frames.NEED_DATA
    dec.receive_data(b"")
    with pytest.raises(frames.FrameError) as info:
        dec.next_event()
    assert info.value.code == "truncated_frame"


def test_bad_json_is_not_fatal():
    dec = frames.FrameDecoder()
    dec.receive_data(struct.pack(">I", 3) + b"{x}" + frames.encode({"id": 7, "op": "ping"}))
    events, _ = drain(dec)
    assert events[0].error.code == "bad_json"
    assert frames.parse_request(events[1]).id == 7


@pytest.mark.parametrize("obj,code", [
    ({"op": "submit", "txn": {}}, "bad_request"),
    ({"id": 1.5, "op": "ping"}, "bad_request"),
    ({"id": True, "op": "ping"}, "bad_request"),
    ({"id": 1, "op": "launch"}, "unknown_op"),
    ({"id": 1, "op": "submit"}, "bad_request"),
    ({"id": 1, "op": "ping", "extra": 1}, "bad_request"),
    ({"id": 1, "v": 2, "op": "ping"}, "bad_version"),
])
def test_envelope_errors(obj, code):
    with pytest.raises(frames.FrameError) as info:
        frames.parse_request(frames.Message(obj))
    assert info.value.code == code


def test_responses_carry_the_request_id():
    body = frames.error_response("abc", "conflict", "m", "pos_txn_id")[4:]
    assert json.loads(body) == {"v": 1, "id": "abc", "ok": False,
                                "error": {"code": "conflict", "message": "m", "field": "pos_txn_id"}}
    assert json.loads(frames.ok_response(5, {"seq": 1})[4:])["result"] == {"seq": 1}


def test_transitions_table_covers_every_state():
    states = {s for s, _ in frames.TRANSITIONS} | set(frames.TRANSITIONS.values())
    assert states == {frames.OPEN, frames.DONE, frames.ERROR}


def test_micropython_decodes_the_same():
    stream = (frames.encode({"id": 1, "op": "ping"}) + struct.pack(">I", 2) + b"[]"
              + frames.encode({"id": "x", "op": "submit", "txn": {"a": 1}}))
    code = ("from daozhang.agent.core.intake import intake_frames as f\n"
            "d = f.FrameDecoder()\n"
            "data = bytes.fromhex(%r)\n"
            "for i in range(len(data)):\n"
            "    d.receive_data(data[i:i + 1])\n"
            "    while True:\n"
            "        ev = d.next_event()\n"
            "        if ev == f.NEED_DATA: break\n"
            "        if ev.error: print('error', ev.error.code)\n"
            "        else: print('req', f.parse_request(ev).id, f.parse_request(ev).op)\n"
            "print(f.encode({'id': 1, 'ok': True}).hex())\n" % stream.hex())
    out = run_micropython(code).split()
    assert out[:8] == ["req", "1", "ping", "error", "bad_json", "req", "x", "submit"]
    assert out[8] == frames.encode({"id": 1, "ok": True}).hex()
