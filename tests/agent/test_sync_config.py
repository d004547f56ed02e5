"""MQTT sync settings in agent.toml ([mqtt], [sync]) and `daozhang device
provision --broker --ca --cert --key`: a provisioned device is complete.

A legacy mqtt.toml next to agent.toml is still read when agent.toml has no
[mqtt] table; the daemon syncs from an agent.toml-only config (real broker).
"""

import os
import stat

import pytest

from daozhang.agent.config import ConfigError, load_agent_config
from daozhang.agent.core.errors import LocalError
from daozhang.signing import generate_keypair
from daozhang.agent.sync_plugin import sync_settings
from daozhang.provision import parse_broker
from daozhang.host_tools.pki.bundle import make_test_pki
from dztest.agent_daemon import PROFILE, sale
from dztest.broker import fleet_pki, tls_broker  # noqa: F401  (fixtures)

MINIMAL = ('[device]\nid = "a"\nkey = "k"\nprofile = "p"\n[journal]\npath = "j"\n'
           '[intake]\nsocket = "s"\n')
MQTT = '[mqtt]\nhost = "mqtt.example.com"\nca = "ca.crt"\ncert = "d.crt"\nkey = "d.key"\n'


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_test_pki(str(tmp_path_factory.mktemp("pki")), devices=("pos-0001", "pos-other"))


def provision_args(tmp, pki, device="pos-0001", cert_for="pos-0001", extra=None):
    generate_keypair(str(tmp / "backend"))
    ident = pki.identity(cert_for)
    args = ["device", "provision", "--board", "generic-linux", "--device-id", device,
            "--profile", PROFILE, "--backend-pubkey", str(tmp / "backend.pub"),
            "--out", str(tmp / "dev"), "--journal-size", "1MiB", "--segment-size", "64KiB",
            "--socket", str(tmp / "s.sock"), "--socket-group", "",
            "--broker", "mqtt.example.com:8884", "--ca", pki.ca_cert, "--cert", ident.cert,
            "--key", ident.key]
    return args + list(extra or [])


def test_provision_with_a_broker_writes_a_complete_device(tmp_path, pki, run_main):
    code, out = run_main(*provision_args(tmp_path, pki))
    assert code == 0, out
    dev = tmp_path / "dev"
    config = load_agent_config(str(dev / "agent.toml"))
    mqtt = config["sync"]["mqtt"]
    assert (mqtt["host"], mqtt["port"]) == ("mqtt.example.com", 8884)
    assert mqtt["ca"] == str(dev / "ca.crt") and mqtt["cert"] == str(dev / "device-tls.crt")
    assert mqtt["key"] == str(dev / "device-tls.key")
    for name in ("ca.crt", "device-tls.crt", "device-tls.key"):
        assert (dev / name).read_bytes()
    assert stat.S_IMODE(os.stat(dev / "device-tls.key").st_mode) == 0o600
    assert sync_settings(config) is config["sync"]
    assert "sync        mqtt.example.com:8884" in out


def test_a_certificate_of_another_device_is_refused_before_anything_is_written(tmp_path, pki, run_main):
    code, out = run_main(*provision_args(tmp_path, pki, cert_for="pos-other"))
    assert code == 2 and "--cert" in out and "pos-other" in out and "pos-0001" in out
    assert not (tmp_path / "dev" / "agent.toml").exists()


def test_tls_files_need_a_broker_and_a_broker_needs_all_three(tmp_path, pki, run_main):
    args = provision_args(tmp_path, pki)
    i = args.index("--broker")
    code, out = run_main(*(args[:i] + args[i + 2:]))
    assert code == 2 and "without --broker" in out
    i = args.index("--key")
    code, out = run_main(*(args[:i] + args[i + 2:]))
    assert code == 2 and "missing --key" in out


@pytest.mark.parametrize("text, host, port", [("h:1883", "h", 1883), ("h", "h", 8883),
                                              ("[::1]:8883", "::1", 8883)])
def test_parse_broker(text, host, port):
    assert parse_broker(text) == (host, port)


@pytest.mark.parametrize("text", ["h:0", "h:x", ":8883", "[::1", "a b:1"])
def test_parse_broker_refuses(text):
    with pytest.raises(LocalError):
        parse_broker(text)


@pytest.mark.parametrize("extra, key", [
    (MQTT.replace('host = "mqtt.example.com"\n', ""), "mqtt.host"),
    (MQTT + "port = 70000\n", "mqtt.port"),
    (MQTT + "colour = 1\n", "mqtt.colour"),
    (MQTT.replace('key = "d.key"\n', ""), "mqtt.key"),
    (MQTT + "tls = 1\n", "mqtt.tls"),
    (MQTT + "[sync]\nnear_full = 2\n", "sync.near_full"),
    (MQTT + "[sync]\nmax_inflight = 0\n", "sync.max_inflight"),
    (MQTT + "[sync]\nack_timeout_s = \"15\"\n", "sync.ack_timeout_s"),
    (MQTT + "[sync]\nlinger = 1\n", "sync.linger"),
    ("[sync]\nmax_inflight = 4\n", "sync"),
])
def test_invalid_sync_tables_name_file_key_and_problem(tmp_path, extra, key):
    path = tmp_path / "agent.toml"
    path.write_text(MINIMAL + extra)
    with pytest.raises(ConfigError) as info:
        load_agent_config(str(path))
    text = str(info.value)
    assert text.startswith(str(path) + ": " + key + ":") and len(text) > len(str(path)) + len(key) + 4


def test_sync_tables_resolve_paths_and_plain_tcp_needs_no_tls_files(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(MINIMAL + MQTT + '[sync]\nstatus_file = "st.json"\nnear_full = 0.7\n')
    cfg = load_agent_config(str(path))["sync"]
    assert cfg["mqtt"]["ca"] == str(tmp_path / "ca.crt")
    assert cfg["sync"] == {"status_file": str(tmp_path / "st.json"), "near_full": 0.7}
    path.write_text(MINIMAL + '[mqtt]\nhost = "127.0.0.1"\nport = 1883\ntls = false\n')
    assert load_agent_config(str(path))["sync"]["mqtt"]["tls"] is False
    path.write_text(MINIMAL)
    assert load_agent_config(str(path))["sync"] is None


def test_legacy_mqtt_toml_is_read_only_without_an_mqtt_table(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(MINIMAL)
    (tmp_path / "mqtt.toml").write_text(MQTT.replace("mqtt.example.com", "legacy.example.com"))
    assert sync_settings(load_agent_config(str(path)))["mqtt"]["host"] == "legacy.example.com"
    path.write_text(MINIMAL + MQTT)
    assert sync_settings(load_agent_config(str(path)))["mqtt"]["host"] == "mqtt.example.com"


@pytest.mark.timeout(90)
def test_the_daemon_syncs_from_agent_toml_alone(tmp_path, tls_broker):
    from daozhang.client import Client
    from dztest.sync_world import SyncWorld, wait_for
    world = SyncWorld(tmp_path, tls_broker, str(tmp_path / "backend.db"))
    try:
        world.start_backend("b1")
        config, sock, _ = world.provision_agent("pos-cfg-1")
        legacy = os.path.join(os.path.dirname(config), "mqtt.toml")
        with open(legacy) as f:
            tables = f.read()
        os.unlink(legacy)
        with open(config, "a") as f:
            f.write("\n" + tables)
        assert load_agent_config(config)["sync"]["mqtt"]["port"] == tls_broker.settings("pos-cfg-1")["port"]
        world.start_agent(config)
        with Client(sock) as pos:
            pos.submit(sale("CFG-1"))
        store = world.store()
        wait_for(lambda: store.stats()["receipts"] == 1, 30, "the receipt stored at the backend")
    finally:
        world.close()
