"""SPEC 5.1 frames from a UART or a socket on both interpreters: split
at every byte, bad JSON not fatal, oversize fatal."""

import struct

from daozhang.agent.core.intake import intake_frames as f

from portable import kit


def _frame(obj):
    return f.encode(obj)


def test_frames_split_at_every_byte_boundary_decode_the_same():
    data = _frame({"v": 1, "id": "a", "op": "ping"}) + _frame({"v": 1, "id": "b", "op": "ping"})
    for cut in range(len(data) + 1):
        dec = f.FrameDecoder()
        got = []
        for piece in (data[:cut], data[cut:]):
            if not piece:
                continue                  # b"" would mean the peer closed
            dec.receive_data(piece)
            while True:
                ev = dec.next_event()
                if ev == f.NEED_DATA:
                    break
                got.append(ev.obj["id"])
        assert got == ["a", "b"], cut


def test_bad_json_is_an_error_message_then_decoding_goes_on():
    dec = f.FrameDecoder()
    dec.receive_data(struct.pack(">I", 3) + b"{x}" + _frame({"v": 1, "id": "c", "op": "ping"}))
    first = dec.next_event()
    assert first.error is not None and first.error.code == "bad_json"
    assert dec.next_event().obj["id"] == "c"


def test_oversize_frame_is_fatal():
    dec = f.FrameDecoder()
    dec.receive_data(struct.pack(">I", f.MAX_FRAME + 1))
    err = kit.raises(f.FrameError, dec.next_event)
    assert err.code == "frame_too_large"
