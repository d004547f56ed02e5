"""The readiness rule: a port that accepts is not a ready broker.

mosquitto 2.0 listens on a TLS port before it loads its key, so a broker
about to die of a bad key accepts connections for a moment. These tests
hold that window open with a plain listening socket."""

import socket

import pytest

from daozhang.host_tools.demo.broker_ready import NotReady, log_says_running, wait_broker_ready


@pytest.fixture
def listening_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def test_an_accepting_port_whose_process_then_exits_is_not_ready(listening_port):
    statuses = iter([None, None, 3])
    with pytest.raises(NotReady, match="exited with 3"):
        wait_broker_ready("127.0.0.1", listening_port, lambda t: next(statuses),
                          lambda: "Opening ipv4 listen socket on port 1.\n", timeout=30)


def test_the_running_line_and_an_accepting_port_are_ready(listening_port):
    wait_broker_ready("127.0.0.1", listening_port, lambda t: None,
                      lambda: "1: mosquitto version 2.0.11 running\n", timeout=30)


def test_no_running_line_times_out_naming_the_port(listening_port):
    with pytest.raises(NotReady, match="not ready on 127.0.0.1:%d" % listening_port):
        wait_broker_ready("127.0.0.1", listening_port, lambda t: None, lambda: "", timeout=0)


def test_the_running_line_is_recognised_across_versions():
    assert log_says_running("1795663024: mosquitto version 2.0.18 running")
    assert not log_says_running("1795663024: mosquitto version 2.0.11 starting")
