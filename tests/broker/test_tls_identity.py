"""Only certificates of the fleet CA, valid now, get in (examples/mosquitto).

Each refusal is checked twice: a paho MQTT 5 client does not get connected,
and a raw TLS client sees the exact alert that names why, so a test cannot
pass because of some unrelated failure.
"""

import pytest

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(60)]


def test_device_and_backend_certificates_connect(tls_broker):
    for name in ("dev-a", "dev-b", "backend"):
        outcome = tls_broker.try_connect(name)
        assert outcome.connected, outcome
        assert tls_broker.tls_refusal(tls_broker.pki.identity(name)) is None


@pytest.mark.parametrize("which, alert", [
    ("none", "SSLV3_ALERT_HANDSHAKE_FAILURE"),  # TLS 1.2: no certificate sent
    ("expired", "SSLV3_ALERT_CERTIFICATE_EXPIRED"),
    ("foreign", "TLSV1_ALERT_UNKNOWN_CA"),
    # Signed by the fleet CA, but its extended key usage is serverAuth only.
    ("server", "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE"),
])
def test_bad_client_certificate_is_refused(tls_broker, fleet_pki, which, alert):
    cert = {"none": None, "expired": fleet_pki.expired, "foreign": fleet_pki.foreign,
            "server": fleet_pki.server}[which]
    outcome = tls_broker.try_connect(cert=cert)
    assert not outcome.connected, outcome
    assert tls_broker.tls_refusal(cert) == alert


def test_client_checks_the_broker_against_the_fleet_ca(tls_broker, fleet_pki):
    # A terminal that trusts another CA must not talk to this broker.
    foreign_ca = fleet_pki.foreign_ca.directory + "/ca.crt"
    outcome = tls_broker.try_connect("dev-a", ca=foreign_ca)
    assert not outcome.connected, outcome
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.detail
    assert tls_broker.tls_refusal(fleet_pki.identity("dev-a"), ca=foreign_ca) \
        == "CERTIFICATE_VERIFY_FAILED"
