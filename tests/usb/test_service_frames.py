"""The service-port frame codec (docs/SPEC.md §8, "Frame layout").

Fuzz invariant: whatever bytes arrive, in whatever pieces, the decoder yields
only Frame, BadFrame or NEED_DATA, raises nothing, and never holds more than
its buffer limit.  Round trip: any frame sent is received equal, also split
at any points and surrounded by garbage.
"""

import binascii
import struct

import pytest
from hypothesis import given, settings, strategies as st

from daozhang.agent.core.errors import LocalError
from daozhang.agent.core.service.service_frames import (ERROR, MAGIC, NAK, NEED_DATA, REQUEST, RESPONSE, BadFrame,
                                                        Frame, FrameCodec, FrameError, decode_frame, encode_frame)

def _info_frame_hex():
    """REQUEST seq 1 {"cmd": "info"}, built field by field from the spec table."""
    head = bytes.fromhex("445a5531010000010000000a")
    head += struct.pack(">I", binascii.crc32(head))
    body = head + bytes.fromhex("a163636d6464696e666f")
    return (body + struct.pack(">I", binascii.crc32(body))).hex()


def test_layout_matches_spec_bytes():
    data = encode_frame(Frame(REQUEST, 1, {"cmd": "info"}))
    assert data.hex() == _info_frame_hex()
    assert data[:4] == b"DZU1" and len(data) == 16 + 10 + 4
    assert binascii.crc32(b"123456789") == 0xCBF43926  # the CRC the spec names


def collect(codec):
    events = []
    while True:
        event = codec.next_event()
        if event is NEED_DATA:
            return events
        events.append(event)


def test_garbage_before_a_frame_is_reported_then_the_frame_found():
    codec = FrameCodec()
    frame = Frame(RESPONSE, 9, {"data": b"\x00" * 40})
    codec.receive_data(b"\xffnoise" + codec.send(frame))
    assert collect(codec) == [BadFrame("garbage", 6), frame]


def test_bad_crc_is_reported_and_the_following_frame_still_found():
    codec = FrameCodec()
    bad = bytearray(codec.send(Frame(REQUEST, 1, {"cmd": "info"})))
    bad[20] ^= 0x10
    good = Frame(REQUEST, 2, {"cmd": "health"})
    codec.receive_data(bytes(bad) + codec.send(good))
    events = collect(codec)
    assert events[0].reason == "crc" and events[-1] == good
    assert all(isinstance(e, BadFrame) for e in events[:-1])


def test_torn_frame_followed_by_a_whole_one_resynchronises():
    codec = FrameCodec()
    whole = codec.send(Frame(RESPONSE, 3, {"data": b"x" * 100}))
    nxt = Frame(RESPONSE, 4, {"data": b"y"})
    codec.receive_data(whole[:60] + codec.send(nxt) + b"\x00" * 200)
    events = collect(codec)
    assert nxt in events and events[0].reason == "crc"


def test_corrupt_header_length_is_caught_before_waiting_for_the_payload():
    codec = FrameCodec()
    data = bytearray(codec.send(Frame(REQUEST, 1, {"cmd": "info"})))
    data[9] ^= 0x40  # length now claims 4 MiB more
    codec.receive_data(bytes(data))
    assert collect(codec)[0].reason == "header_crc"


def test_oversize_and_flags_are_rejected():
    codec = FrameCodec(max_payload=256)
    head = struct.pack(">4sBBHI", MAGIC, REQUEST, 0, 1, 257)
    codec.receive_data(head + struct.pack(">I", binascii.crc32(head)))
    assert collect(codec)[0].reason == "oversize"
    head = struct.pack(">4sBBHI", MAGIC, REQUEST, 1, 1, 1)
    codec.receive_data(head + struct.pack(">I", binascii.crc32(head)))
    assert collect(codec)[0].reason == "flags"
    with pytest.raises(LocalError):
        codec.send(Frame(RESPONSE, 1, {"data": b"z" * 300}))


def test_intact_frame_with_a_non_map_payload_keeps_its_seq():
    head = struct.pack(">4sBBHI", MAGIC, REQUEST, 0, 77, 1)
    head += struct.pack(">I", binascii.crc32(head))
    body = head + b"\x01"  # CBOR integer 1, not a map
    codec = FrameCodec()
    codec.receive_data(body + struct.pack(">I", binascii.crc32(body)))
    (event,) = collect(codec)
    assert event == BadFrame("payload", len(body) + 4, REQUEST, 77)


def test_silence_drops_a_partial_frame():
    codec = FrameCodec()
    codec.receive_data(codec.send(Frame(NAK, 0, {"reason": "crc"}))[:10])
    assert codec.next_event() is NEED_DATA
    assert codec.discard_partial() == BadFrame("truncated", 10)
    assert codec.buffered == 0 and codec.discard_partial() is None


def test_feeding_past_the_buffer_limit_is_our_callers_error():
    codec = FrameCodec(max_payload=256)
    with pytest.raises(LocalError):
        codec.receive_data(b"\x00" * (codec.buffer_limit + 1))


def test_decode_frame_raises_only_frame_error():
    good = encode_frame(Frame(ERROR, 5, {"code": "bad_request", "message": "x"}))
    assert decode_frame(good).payload["code"] == "bad_request"
    for data in (good[:-1], good + b"\x00", b"DZU1" + good[4:8] + b"\xff" + good[9:], b""):
        with pytest.raises(FrameError):
            decode_frame(data)


cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.binary(max_size=64)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
frames = st.builds(Frame, st.sampled_from([REQUEST, RESPONSE, ERROR, NAK, 0, 200]),
                   st.integers(0, 0xFFFF), st.dictionaries(st.text(max_size=8), cbor_values, max_size=5))


@settings(max_examples=200, deadline=None)
@given(st.lists(frames, min_size=1, max_size=5), st.data())
def test_round_trip_split_anywhere_with_garbage_between(sent, data):
    codec = FrameCodec(max_payload=4096)
    stream = b""
    for frame in sent:
        # Garbage without the magic in it, so it cannot forge a frame start.
        junk = data.draw(st.binary(max_size=20)).replace(b"D", b"")
        stream += junk + codec.send(frame)
    received = []
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    for start, end in zip([0] + cuts, cuts + [len(stream)]):
        codec.receive_data(stream[start:end])
        received.extend(e for e in collect(codec) if isinstance(e, Frame))
    assert received == sent


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(max_size=600) | st.sampled_from([MAGIC, MAGIC[:3], b"DZU1\x01\x00"]),
                max_size=12))
def test_fuzz_decoder_yields_only_events_and_stays_bounded(pieces):
    # Invariant: Frame, BadFrame or NEED_DATA; never an exception; buffer bounded.
    codec = FrameCodec(max_payload=256)
    stream = b"".join(pieces)
    for start in range(0, len(stream), codec.max_frame):
        codec.receive_data(stream[start:start + codec.max_frame])
        while True:
            event = codec.next_event()
            assert event is NEED_DATA or isinstance(event, (Frame, BadFrame))
            if event is NEED_DATA:
                assert codec.buffered < codec.max_frame
                break


@settings(max_examples=300, deadline=None)
@given(frames, st.integers(0, 10_000), st.integers(0, 7))
def test_fuzz_single_bit_flip_never_yields_a_different_frame(frame, where, bit):
    codec = FrameCodec(max_payload=4096)
    data = bytearray(codec.send(frame))
    data[where % len(data)] ^= 1 << bit
    codec.receive_data(bytes(data))
    events = collect(codec)
    assert not any(isinstance(e, Frame) for e in events)
