"""The fleet PKI library and `daozhang pki ...`."""

import json
import os
import stat

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given, strategies as st

from daozhang.cli.main import main
from daozhang.host_tools.pki import ca as pki
from daozhang.host_tools.pki.bundle import make_test_pki

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def test_pki_dir(tmp_path_factory):
    return make_test_pki(str(tmp_path_factory.mktemp("pki")))


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def eku(cert):
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_test_pki_has_everything_a_test_needs(test_pki_dir):
    t = test_pki_dir
    ca = pki.load_cert(t.ca_cert)
    for name, kind in (("dev-a", "device"), ("dev-b", "device"), ("backend", "backend")):
        paths = t.identity(name)
        assert mode(paths.key) == 0o600
        cert = pki.load_cert(paths.cert)
        assert pki.check_certificate(ca, cert) == (name, kind)
        assert eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    server = pki.load_cert(t.server.cert)
    assert eku(server) == [ExtendedKeyUsageOID.SERVER_AUTH]
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(v) for v in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert mode(os.path.join(t.directory, "ca", "ca.key")) == 0o600
    with pytest.raises(pki.PkiError, match="no identity 'dev-z'"):
        t.identity("dev-z")


def test_expired_and_foreign_certificates_are_rejected(test_pki_dir):
    ca = pki.load_cert(test_pki_dir.ca_cert)
    with pytest.raises(pki.CertificateRejected, match="valid .* to .*, now is"):
        pki.check_certificate(ca, pki.load_cert(test_pki_dir.expired.cert))
    with pytest.raises(pki.CertificateRejected, match="not issued by CA"):
        pki.check_certificate(ca, pki.load_cert(test_pki_dir.foreign.cert))


def test_ca_is_a_ca_and_leaves_are_not(test_pki_dir):
    ca = pki.load_cert(test_pki_dir.ca_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    leaf = pki.load_cert(test_pki_dir.identity("dev-a").cert)
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_server_hosts_become_sans(tmp_path):
    ca = pki.create_ca(str(tmp_path / "ca"))
    paths = pki.issue_server(ca, ["mqtt.example.com", "10.0.0.7", "localhost"],
                             str(tmp_path / "broker"))
    san = pki.load_cert(paths.cert).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "mqtt.example.com"]
    assert {str(v) for v in san.get_values_for_type(x509.IPAddress)} == \
        {"127.0.0.1", "::1", "10.0.0.7"}
    with pytest.raises(pki.PkiError, match="--host 'bad host'"):
        pki.issue_server(ca, ["bad host"], str(tmp_path / "other"))


def test_never_overwrites_and_one_name_is_one_kind(tmp_path):
    ca = pki.create_ca(str(tmp_path / "ca"))
    pki.issue_device(ca, "term-1", str(tmp_path / "term-1"))
    with pytest.raises(pki.PkiError, match="already exists"):
        pki.issue_device(ca, "term-1", str(tmp_path / "term-1"))
    with pytest.raises(pki.PkiError, match="already exists"):
        pki.create_ca(str(tmp_path / "ca"))
    with pytest.raises(pki.IdentityConflict, match="'term-1' is already issued as a device"):
        pki.issue_backend(ca, "term-1", str(tmp_path / "b"))
    pki.issue_device(ca, "term-1", str(tmp_path / "term-1-renewed"))  # renewal is fine
    kinds = [(e["cn"], e["kind"]) for e in pki.issued(ca.directory)]
    assert kinds == [("term-1", "device"), ("term-1", "device")]


@given(st.text(max_size=80))
def test_identity_check_accepts_only_one_topic_level(name):
    """Invariant: returns the name unchanged or raises PkiError, nothing else;
    an accepted name is 1-64 chars and cannot widen an MQTT topic."""
    try:
        assert pki.check_identity(name) == name
    except pki.PkiError:
        return
    assert 1 <= len(name) <= 64
    assert not set(name) & set("/+#$ \t\n\x00")


def run(capsys, *argv):
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def test_cli_end_to_end(tmp_path, capsys):
    ca_dir = str(tmp_path / "ca")
    assert run(capsys, "pki", "init", "--out", ca_dir)[0] == 0
    code, out, _ = run(capsys, "pki", "server", "--ca", ca_dir, "--host", "mqtt.example.com",
                       "--out", str(tmp_path / "broker"))
    assert code == 0 and "broker.crt" in out
    assert run(capsys, "pki", "device", "term-7", "--ca", ca_dir,
               "--out", str(tmp_path / "term-7"))[0] == 0
    assert run(capsys, "pki", "backend", "--ca", ca_dir, "--out", str(tmp_path / "backend"))[0] == 0
    assert mode(str(tmp_path / "term-7.key")) == 0o600

    code, out, _ = run(capsys, "pki", "show", str(tmp_path / "term-7.crt"), "--ca", ca_dir, "--json")
    info = json.loads(out)
    assert (code, info["cn"], info["kind"], info["valid"]) == (0, "term-7", "device", True)

    code, _, err = run(capsys, "pki", "device", "backend", "--ca", ca_dir,
                       "--out", str(tmp_path / "x"))
    assert code == 2 and err.startswith("daozhang: 'backend' is already issued as a backend")
    code, _, err = run(capsys, "pki", "device", "a/b", "--ca", ca_dir, "--out", str(tmp_path / "y"))
    assert code == 2 and "one MQTT topic level" in err


def test_cli_show_exits_1_for_a_certificate_of_another_ca(tmp_path, capsys):
    pki.create_ca(str(tmp_path / "ca"))
    other = pki.create_ca(str(tmp_path / "other"))
    pki.issue_device(other, "term-1", str(tmp_path / "term-1"))
    code, out, err = run(capsys, "pki", "show", str(tmp_path / "term-1.crt"),
                         "--ca", str(tmp_path / "ca"))
    assert code == 1
    assert "valid      False" in out and "not issued by CA" in err


def test_cli_without_a_ca_says_how_to_make_one(tmp_path, capsys):
    os.makedirs(str(tmp_path / "empty"))
    code, _, err = run(capsys, "pki", "device", "t1", "--ca", str(tmp_path / "empty"),
                       "--out", str(tmp_path / "t1"))
    assert code == 2 and "daozhang pki init" in err


@given(st.binary(max_size=600) | st.builds(
    lambda body: b"-----BEGIN CERTIFICATE-----\n" + body + b"\n-----END CERTIFICATE-----\n",
    st.binary(max_size=400)))
def test_load_cert_fuzz(tmp_path_factory, data):
    """Invariant: a certificate file loads, or raises PkiError; nothing else."""
    path = tmp_path_factory.mktemp("fuzz") / "x.crt"
    path.write_bytes(data)
    try:
        pki.load_cert(str(path))
    except pki.PkiError as exc:
        assert "is not a PEM certificate" in str(exc)
