"""The USB service port against a party on the link that is not the
technician (issue 12): the session token never leaves in a resend, and
request text holding card data is refused without being echoed."""

import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from daozhang.agent.core.service.service_frames import ERROR, NAK, NEED_DATA, REQUEST, Frame, FrameCodec
from daozhang.agent.core.service.service_session import AUTHENTICATED, UNAUTHENTICATED, DeviceSession, auth_message
from daozhang.signing import ed25519_verify
from daozhang.host_tools.usb.service_client import ServiceClient
from dztest.usb import MemoryJournal

SEG = 8192
TECH = Ed25519PrivateKey.generate()
JOURNAL = MemoryJournal(os.urandom(4096 + SEG * 2), SEG, 2)


def make_session():
    return DeviceSession("dev-1", JOURNAL, ed25519_verify, [TECH.public_key().public_bytes_raw()],
                         os.urandom, max_payload=16384)


class Link:
    """Frames in, every byte out recorded: what anyone on the link sees."""

    def __init__(self, session):
        self.session = session
        self.codec = FrameCodec()
        self.seq = 0
        self.seen = b""

    def send(self, data):
        out = self.session.receive_data(data, 0)
        self.seen += out
        self.codec.receive_data(out)
        events = []
        while (event := self.codec.next_event()) is not NEED_DATA:
            events.append(event)
        return events

    def request(self, payload, seq=None):
        if seq is None:
            self.seq += 1
        return self.send(self.codec.send(Frame(REQUEST, self.seq if seq is None else seq, payload)))

    def nak(self):
        return self.send(self.codec.send(Frame(NAK, 0, {"reason": "crc"})))

    def login(self):
        (challenge,) = self.request({"cmd": "auth_begin"})
        signature = TECH.sign(auth_message("dev-1", challenge.payload["nonce"]))
        self.auth_request = {"cmd": "auth", "pubkey": TECH.public_key().public_bytes_raw(),
                             "signature": signature}
        (answer,) = self.request(self.auth_request)
        return answer.payload["session"]


def test_a_nak_right_after_auth_gets_no_token_and_ends_the_session():
    session = make_session()
    link = Link(session)
    token = link.login()
    seen_before = len(link.seen)
    (answer,) = link.nak()
    assert (answer.type, answer.payload["code"]) == (ERROR, "auth_not_resent")
    assert token not in link.seen[seen_before:]
    assert session.state == UNAUTHENTICATED
    (refused,) = link.request({"cmd": "health", "session": token})
    assert refused.payload["code"] == "auth_required"          # the token is void


def test_replaying_the_auth_request_gets_no_token():
    session = make_session()
    link = Link(session)
    token = link.login()
    seen_before = len(link.seen)
    (answer,) = link.request(link.auth_request, seq=link.seq)   # same seq, same payload
    assert answer.payload["code"] == "auth_not_resent" and token not in link.seen[seen_before:]
    assert session.counters["tokens_withheld"] == 1


def test_other_answers_are_still_resent_byte_for_byte():
    session = make_session()
    link = Link(session)
    link.login()
    first = link.request({"cmd": "info"})
    assert link.nak() == first and session.state == AUTHENTICATED


def test_the_laptop_authenticates_again_when_the_auth_answer_is_lost():
    session = make_session()

    class LosesFirstAuthAnswer:
        lost = False
        pending = b""

        def write(self, data):
            out = session.receive_data(data, 0)
            if not self.lost and session.state == AUTHENTICATED:
                self.lost = True              # the answer carrying the token never arrives
                return
            self.pending += out

        def read(self, timeout):
            data, self.pending = self.pending, b""
            return data

    clock = iter(range(10 ** 6))
    client = ServiceClient(LosesFirstAuthAnswer(), timeout=1.0, tries=3, clock=lambda: next(clock))
    assert client.authenticate(TECH) == "dev-1"
    assert client.read(0, 16) == JOURNAL.data[:16]          # the new token works
    assert session.state == AUTHENTICATED and session.counters["tokens_withheld"] == 1


def test_card_data_in_a_request_is_refused_and_not_echoed():
    link = Link(make_session())
    for payload in ({"cmd": "4111 1111 1111 1111"}, {"cmd": "info", "note": "6222.0212.3456.7894"},
                    {"cmd": "read", "offset": "%B4111111111111111^DOE/J^2512"}):
        (answer,) = link.request(payload)
        assert (answer.type, answer.payload["code"]) == (ERROR, "pan_refused")
        assert b"1111" not in link.seen and b"7894" not in link.seen


class StrangerOnTheLink(RuleBasedStateMachine):
    """Invariant: whatever a stranger sends (NAKs, replays, garbage) between
    the technician's requests, the token appears in exactly one frame: the
    answer to the auth that issued it."""

    def __init__(self):
        super().__init__()
        self.link = Link(make_session())
        self.tokens = []
        self.last = {"cmd": "info"}

    @rule()
    def technician_logs_in(self):
        self.tokens.append(self.link.login())
        self.last = self.link.auth_request

    @rule()
    def stranger_naks(self):
        self.link.nak()

    @rule()
    def stranger_replays_the_last_request(self):
        self.link.request(self.last, seq=self.link.seq)

    @rule(junk=st.binary(max_size=40))
    def stranger_sends_garbage(self, junk):
        self.link.send(junk)
        self.link.session.on_silence(0)

    @rule(cmd=st.sampled_from(["info", "health", "alerts", "close"]))
    def technician_asks(self, cmd):
        payload = {"cmd": cmd}
        if self.tokens:
            payload["session"] = self.tokens[-1]
        self.link.request(payload)
        self.last = payload

    @invariant()
    def each_token_left_once(self):
        for token in self.tokens:
            assert self.link.seen.count(token) == 1


StrangerOnTheLink.TestCase.settings = settings(max_examples=60, stateful_step_count=20, deadline=None)
test_a_stranger_never_gets_a_token = StrangerOnTheLink.TestCase
