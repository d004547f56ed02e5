"""The device's service session (docs/SPEC.md §8, "Session states", "Commands")."""

import hashlib
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from daozhang.agent.core.service.service_frames import ERROR, NAK, NEED_DATA, REQUEST, RESPONSE, Frame, FrameCodec
from daozhang.agent.core.service.service_session import (AUTHENTICATED, CHALLENGE_ISSUED, COMMANDS, STATES,
                                                         TOKEN_COMMANDS, TRANSITIONS, UNAUTHENTICATED, DeviceSession,
                                                         auth_message)
from daozhang.signing import ed25519_verify
from dztest.usb import MemoryJournal

SEG = 8192
COUNT = 3
TECH = Ed25519PrivateKey.generate()
TECH_PUB = TECH.public_key().public_bytes_raw()
STRANGER = Ed25519PrivateKey.generate()
JOURNAL_BYTES = os.urandom(4096 + SEG * COUNT)


class Peer:
    """The laptop end, frame by frame, with a fixed clock the test moves."""

    def __init__(self, session):
        self.session = session
        self.codec = FrameCodec()
        self.seq = 100
        self.now = 0
        self.token = None

    def send_bytes(self, data):
        self.codec.receive_data(self.session.receive_data(data, self.now))
        events = []
        while True:
            event = self.codec.next_event()
            if event is NEED_DATA:
                return events
            events.append(event)

    def frame(self, payload, seq=None):
        if seq is None:
            self.seq += 1
            seq = self.seq
        return self.codec.send(Frame(REQUEST, seq, payload))

    def call(self, cmd, **args):
        payload = dict(args, cmd=cmd)
        (answer,) = self.send_bytes(self.frame(payload))
        return answer

    def login(self, key=TECH):
        nonce = self.call("auth_begin").payload["nonce"]
        sig = key.sign(auth_message("dev-1", nonce))
        answer = self.call("auth", pubkey=key.public_key().public_bytes_raw(), signature=sig)
        if answer.type == RESPONSE:
            self.token = answer.payload["session"]
        return answer


def make_session(callbacks=None, journal=None, idle_timeout=120):
    counter = iter(range(1, 10 ** 6))
    journal = journal or MemoryJournal(JOURNAL_BYTES, SEG, COUNT)
    return DeviceSession("dev-1", journal, ed25519_verify, [TECH_PUB],
                         lambda n: bytes([next(counter) % 256]) * n, callbacks=callbacks,
                         max_payload=16384, idle_timeout=idle_timeout)


def test_unauthenticated_only_info_answers():
    peer = Peer(make_session(callbacks={"info": lambda: {"backlog": 4}, "health": lambda: {}}))
    info = peer.call("info")
    assert info.type == RESPONSE and info.payload["backlog"] == 4
    assert info.payload["device_id"] == "dev-1" and info.payload["segment_count"] == COUNT
    for cmd in ("read", "segment", "alerts", "health", "close"):
        answer = peer.call(cmd, offset=0, length=8, index=0, session=b"\x00" * 16)
        assert (answer.type, answer.payload["code"]) == (ERROR, "auth_required")
    assert peer.call("auth", pubkey=TECH_PUB, signature=b"\x00" * 64).payload["code"] == "no_challenge"
    assert peer.session.state == UNAUTHENTICATED


def test_challenge_response_opens_a_session_bound_to_its_token():
    peer = Peer(make_session())
    assert peer.login().type == RESPONSE
    assert peer.session.state == AUTHENTICATED
    assert peer.call("read", offset=0, length=8).payload["code"] == "auth_required"
    answer = peer.call("read", offset=4090, length=20, session=peer.token)
    assert answer.payload == {"offset": 4090, "data": JOURNAL_BYTES[4090:4110]}
    seg = peer.call("segment", index=2, offset=100, length=50, session=peer.token).payload
    base = 4096 + 2 * SEG
    assert seg["data"] == JOURNAL_BYTES[base + 100:base + 150]
    assert seg["sha256"] == hashlib.sha256(JOURNAL_BYTES[base:base + SEG]).digest()
    assert peer.call("close", session=peer.token).type == RESPONSE
    assert peer.session.state == UNAUTHENTICATED
    assert peer.call("read", offset=0, length=8, session=peer.token).payload["code"] == "auth_required"


def test_wrong_key_or_signature_fails_and_spends_the_nonce():
    peer = Peer(make_session())
    assert peer.login(STRANGER).payload["code"] == "auth_failed"
    assert peer.session.state == UNAUTHENTICATED
    nonce = peer.call("auth_begin").payload["nonce"]
    good = TECH.sign(auth_message("dev-1", nonce))
    bad = peer.call("auth", pubkey=TECH_PUB, signature=good[:-1] + bytes([good[-1] ^ 1]))
    assert bad.payload["code"] == "auth_failed"
    # The good signature over the spent nonce is now worthless.
    assert peer.call("auth", pubkey=TECH_PUB, signature=good).payload["code"] == "no_challenge"
    peer.call("auth_begin")
    assert peer.call("auth", pubkey=TECH_PUB, signature=good).payload["code"] == "auth_failed"


def test_resent_request_replays_the_answer_instead_of_a_new_nonce():
    peer = Peer(make_session())
    request = peer.frame({"cmd": "auth_begin"})
    (first,) = peer.send_bytes(request)
    (again,) = peer.send_bytes(request)
    assert again == first
    (nak_answer,) = peer.send_bytes(peer.codec.send(Frame(NAK, 0, {"reason": "crc"})))
    assert nak_answer == first
    sig = TECH.sign(auth_message("dev-1", first.payload["nonce"]))
    assert peer.call("auth", pubkey=TECH_PUB, signature=sig).type == RESPONSE


def test_garbage_is_naked_and_a_torn_request_dropped_on_silence():
    peer = Peer(make_session())
    (nak,) = peer.send_bytes(b"\x00garbage")
    assert nak.type == NAK and nak.payload["reason"] == "garbage"
    assert peer.send_bytes(peer.frame({"cmd": "info"})[:12]) == []
    peer.codec.receive_data(peer.session.on_silence(5))
    assert peer.codec.next_event().payload == {"reason": "truncated"}
    assert peer.call("info").type == RESPONSE


def test_idle_timeout_and_link_reset_drop_the_session():
    session = make_session(idle_timeout=60)
    peer = Peer(session)
    peer.login()
    peer.now = 59
    assert peer.call("health", session=peer.token).payload["code"] == "unavailable"
    peer.now = 119
    assert peer.call("alerts", session=peer.token).payload["code"] == "auth_required"
    assert session.state == UNAUTHENTICATED
    peer.login()
    session.reset()
    assert session.state == UNAUTHENTICATED
    assert peer.call("alerts", session=peer.token).payload["code"] == "auth_required"


def test_argument_errors_and_callback_faults_are_answered_not_raised():
    def broken():
        raise RuntimeError("database locked")
    peer = Peer(make_session(callbacks={"info": broken, "alerts": broken, "health": lambda: [1]}))
    info = peer.call("info").payload
    assert info["unavailable"] == "database locked" and info["device_id"] == "dev-1"
    peer.login()
    t = peer.token
    cases = [
        (dict(cmd="read", offset=-1, length=1), "bad_request"),
        (dict(cmd="read", offset=0, length=True), "bad_request"),
        (dict(cmd="read", offset=0, length=10 ** 6), "too_large"),
        (dict(cmd="read", offset=len(JOURNAL_BYTES) + 1, length=1), "out_of_range"),
        (dict(cmd="segment", index=COUNT, offset=0, length=1), "out_of_range"),
        (dict(cmd="segment", index=0, offset=SEG + 1, length=1), "out_of_range"),
        (dict(cmd="format"), "unknown_command"),
        (dict(cmd=7), "bad_request"),
        (dict(cmd="alerts"), "unavailable"),
        (dict(cmd="health"), "unavailable"),
    ]
    for payload, code in cases:
        cmd = payload.pop("cmd")
        answer = peer.call(cmd, session=t, **payload) if isinstance(cmd, str) else \
            peer.send_bytes(peer.frame({"cmd": cmd}))[0]
        assert (answer.type, answer.payload["code"]) == (ERROR, code), payload
    end = peer.call("read", offset=len(JOURNAL_BYTES) - 3, length=100, session=t).payload
    assert end["data"] == JOURNAL_BYTES[-3:]


def test_every_table_transition_names_known_states_and_commands():
    outcomes = set(COMMANDS) | {"auth_ok", "auth_failed", "drop"}
    for (state, outcome), new_state in TRANSITIONS.items():
        assert state in STATES and new_state in STATES and outcome in outcomes
    for cmd in TOKEN_COMMANDS:
        assert (UNAUTHENTICATED, cmd) not in TRANSITIONS
        assert (CHALLENGE_ISSUED, cmd) not in TRANSITIONS


class SessionMachine(RuleBasedStateMachine):
    """Random traffic; invariant: only an authenticated holder of the token
    gets journal bytes, the state follows the table, the journal is only read."""

    def __init__(self):
        super().__init__()
        self.journal = MemoryJournal(JOURNAL_BYTES, SEG, COUNT)
        self.session = make_session(journal=self.journal,
                                    callbacks={"alerts": lambda: [], "health": lambda: {}})
        self.peer = Peer(self.session)
        self.authenticated = False

    def _check(self, before, cmd, events, token_ok):
        for event in events:
            if event.type == RESPONSE and cmd in TOKEN_COMMANDS:
                assert before == AUTHENTICATED and token_ok
            if event.type == RESPONSE and cmd != "auth":
                assert self.session.state == TRANSITIONS[(before, cmd)]

    @rule(cmd=st.sampled_from(COMMANDS + ("bogus",)), use_token=st.booleans(),
          index=st.integers(0, COUNT), offset=st.integers(0, SEG + 5), length=st.integers(0, 600))
    def request(self, cmd, use_token, index, offset, length):
        before = self.session.state
        token = self.peer.token if use_token and self.peer.token else b"\x01" * 16
        token_ok = self.peer.token is not None and token == self.peer.token and before == AUTHENTICATED
        payload = {"cmd": cmd, "session": token, "index": index, "offset": offset, "length": length}
        events = self.peer.send_bytes(self.peer.frame(payload))
        self._check(before, cmd, events, token_ok)
        if cmd == "close" and events and events[0].type == RESPONSE:
            self.authenticated = False
        if cmd == "auth_begin" and before == AUTHENTICATED:
            self.authenticated = False

    @rule(good_key=st.booleans())
    def login(self, good_key):
        answer = self.peer.login(TECH if good_key else STRANGER)
        assert (answer.type == RESPONSE) == good_key
        self.authenticated = good_key

    @rule(junk=st.binary(max_size=64))
    def garbage(self, junk):
        # Without "D" no magic (or its prefix) can form, so nothing lingers.
        for event in self.peer.send_bytes(junk.replace(b"D", b"")):
            assert event.type in (NAK, RESPONSE, ERROR)

    # Small steps never add up to the 120 s idle timeout within one run.
    @rule(seconds=st.sampled_from([0, 1, 3, 500]))
    def time_passes(self, seconds):
        self.peer.now += seconds
        if seconds >= 120:
            self.session.receive_data(b"", self.peer.now)
            self.authenticated = False

    @rule()
    def cable_pulled(self):
        self.session.reset()
        self.authenticated = False

    @invariant()
    def state_is_known_and_matches(self):
        assert self.session.state in STATES
        assert (self.session.state == AUTHENTICATED) == self.authenticated
        assert self.journal.data == JOURNAL_BYTES


SessionMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_session_state_machine = SessionMachine.TestCase


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300) | st.builds(
    lambda seq, cmd: FrameCodec().send(Frame(REQUEST, seq, {"cmd": cmd})),
    st.integers(0, 0xFFFF), st.sampled_from(COMMANDS + ("x",))), max_size=10))
def test_fuzz_session_answers_any_bytes_with_frames_and_never_raises(chunks):
    # Invariant: whatever arrives, the device only writes whole frames back,
    # never raises, never leaves the unauthenticated state without a key.
    session = make_session()
    reader = FrameCodec()
    for chunk in chunks:
        out = session.receive_data(chunk, 0)
        reader.receive_data(out)
        while True:
            event = reader.next_event()
            if event is NEED_DATA:
                break
            assert isinstance(event, Frame) and event.type in (RESPONSE, ERROR, NAK)
            if event.type == RESPONSE:
                assert set(event.payload) & {"nonce", "device_id"}
        assert session.state in (UNAUTHENTICATED, CHALLENGE_ISSUED)
    assert reader.buffered == 0
