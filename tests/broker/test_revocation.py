"""Revoking a terminal's certificate (host_tools/pki/crl.py) shuts it out of
the broker (the shipped config's `crlfile`) while the rest of the fleet
keeps connecting.  Its own PKI: the session's shared one must stay intact."""

import os
import signal
import subprocess
import time

import pytest

from daozhang.host_tools.pki import crl as pki_crl
from daozhang.host_tools.pki.bundle import make_test_pki
from daozhang.host_tools.pki.errors import PkiError
from dztest.broker import Broker

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(60)]

REVOKED_ALERT = "SSLV3_ALERT_CERTIFICATE_REVOKED"


@pytest.fixture
def own_pki(tmp_path):
    return make_test_pki(str(tmp_path / "pki"), devices=("dev-keep", "dev-stolen"))


def test_a_revoked_device_is_refused_after_a_restart(own_pki):
    with Broker(pki=own_pki) as broker:
        assert broker.try_connect("dev-stolen").connected
        serials = pki_crl.revoke(own_pki.ca, "dev-stolen")
        assert len(serials) == 1
        broker.restart()
        refused = broker.try_connect("dev-stolen")
        assert not refused.connected, refused
        assert broker.tls_refusal(own_pki.identity("dev-stolen")) == REVOKED_ALERT
        assert broker.try_connect("dev-keep").connected
        assert broker.try_connect("backend").connected


def test_sighup_reloads_the_crl(own_pki):
    with Broker(pki=own_pki) as broker:
        assert broker.try_connect("dev-stolen").connected
        pki_crl.revoke(own_pki.ca, "dev-stolen")
        reloads = broker.log().count("Reloading config")
        os.kill(broker.process.pid, signal.SIGHUP)
        _wait_for_log(broker, "Reloading config", reloads + 1)
        assert broker.tls_refusal(own_pki.identity("dev-stolen")) == REVOKED_ALERT
        assert broker.try_connect("dev-keep").connected


def _wait_for_log(broker, text, count, timeout=10):
    # Waits on the broker process (wakes early if it dies), not a sleep.
    deadline = time.monotonic() + timeout
    while broker.log().count(text) < count:
        assert time.monotonic() < deadline, "no %r in the broker log" % text
        try:
            broker.process.wait(timeout=0.05)
            raise AssertionError("mosquitto exited on SIGHUP:\n" + broker.log()[-2000:])
        except subprocess.TimeoutExpired:
            pass


def test_revoking_twice_changes_nothing_and_unknown_names_are_refused(own_pki):
    first = pki_crl.revoke(own_pki.ca, "dev-stolen")
    assert pki_crl.revoke(own_pki.ca, "dev-stolen") == []
    assert [e["serial"] for e in pki_crl.revoked(own_pki.ca.directory)] == first
    with pytest.raises(PkiError, match="no client certificate issued to 'nobody'"):
        pki_crl.revoke(own_pki.ca, "nobody")


def test_crl_status_counts_and_warns_of_expiry(own_pki):
    status = pki_crl.crl_status(own_pki.ca.directory)
    assert status["revoked"] == 0 and status["days_left"] > 360
    pki_crl.revoke(own_pki.ca, "dev-stolen")
    assert pki_crl.crl_status(own_pki.ca.directory)["revoked"] == 1


def test_cli_revoke_and_crl(tmp_path, run_main):
    import json
    run = run_main

    ca = str(tmp_path / "ca")
    assert run("pki", "init", "--out", ca)[0] == 0
    assert run("pki", "device", "pos-9", "--ca", ca, "--out", str(tmp_path / "pos-9"))[0] == 0
    code, out = run("pki", "revoke", "pos-9", "--ca", ca)
    assert code == 0, out
    assert out.startswith("revoked pos-9: ") and "lists 1" in out
    code, out = run("pki", "crl", "--ca", ca, "--days", "30", "--json")
    status = json.loads(out)
    assert status["revoked"] == 1 and 29 < status["days_left"] <= 30
    code, out = run("pki", "revoke", "pos-10", "--ca", ca)
    assert code == 2 and "no client certificate issued to 'pos-10'" in out
    assert len(out.strip().splitlines()) == 1
