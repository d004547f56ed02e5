"""Broker engineer's notes (SPEC 6.10.3-6.10.4): the backend's share group
must be a secret (no guessable default), and a PUBACK with reason 0x10
("no matching subscribers") is a success for the agent."""

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from daozhang.agent.mqtt_causes import puback_ok
from daozhang.backend.config import (ConfigError, load_backend_config, new_share_group,
                                      worker_client_id)

BASE = '[broker]\nhost = "127.0.0.1"\n[backend]\nkey = "b.key"\ndb = "b.db"\n'


def write(tmp_path, extra):
    path = tmp_path / "backend.toml"
    path.write_text(BASE + extra)
    return str(path)


def test_a_missing_share_group_is_refused_with_a_fresh_secret_to_paste(tmp_path):
    path = write(tmp_path, "")
    with pytest.raises(ConfigError) as exc:
        load_backend_config(path)
    text = str(exc.value)
    assert path in text and "backend.share_group" in text and 'share_group = "backend-' in text


@pytest.mark.parametrize("group", ["daozhang", "backend"])
def test_a_guessable_share_group_is_refused(tmp_path, group):
    with pytest.raises(ConfigError) as exc:
        load_backend_config(write(tmp_path, 'share_group = "%s"\n' % group))
    assert "guessable" in str(exc.value)


def test_a_share_group_with_topic_wildcards_is_refused(tmp_path):
    with pytest.raises(ConfigError):
        load_backend_config(write(tmp_path, 'share_group = "a/b"\n'))


def test_a_secret_share_group_is_kept(tmp_path):
    group = new_share_group()
    assert group != new_share_group() and len(group) == len("backend-") + 16
    cfg = load_backend_config(write(tmp_path, 'share_group = "%s"\n' % group))
    assert cfg["backend"]["share_group"] == group


@pytest.mark.parametrize("code, ok", [(0x00, True), (0x10, True), (0x80, False), (0x87, False),
                                      (0x97, False)])
def test_puback_reason_codes(code, ok):
    assert puback_ok(ReasonCode(PacketTypes.PUBACK, identifier=code)) is ok
    assert puback_ok(code) is ok


# -- the worker's MQTT session (SPEC 6.10.4; the broker side: test_backend_session.py)

GROUP = 'share_group = "backend-0123456789abcdef"\n'


def test_the_client_id_is_the_same_across_restarts_and_differs_per_worker(tmp_path):
    one = load_backend_config(write(tmp_path, GROUP))
    assert one["backend"].get("worker", 1) == 1
    assert worker_client_id(one["broker"], one["backend"], "shop-srv") == "backend-shop-srv-1"
    assert worker_client_id(one["broker"], one["backend"], "shop-srv") == "backend-shop-srv-1"
    two = load_backend_config(write(tmp_path, GROUP + "worker = 2\n"))
    assert worker_client_id(two["broker"], two["backend"], "shop srv/1") == "backend-shop-srv-1-2"
    named = load_backend_config(write(tmp_path, GROUP))
    named["broker"]["client_id"] = "backend-a"          # [broker] client_id wins
    assert worker_client_id(named["broker"], named["backend"], "x") == "backend-a"


@pytest.mark.parametrize("line, key", [("worker = 0\n", "backend.worker"),
                                       ('worker = "2"\n', "backend.worker")])
def test_bad_worker_numbers_are_refused(tmp_path, line, key):
    with pytest.raises(ConfigError) as exc:
        load_backend_config(write(tmp_path, GROUP + line))
    assert key in str(exc.value)


def test_a_bad_session_expiry_is_refused(tmp_path):
    path = write(tmp_path, GROUP)
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace('host = "127.0.0.1"\n', 'host = "127.0.0.1"\nsession_expiry_s = 0\n'))
    with pytest.raises(ConfigError) as exc:
        load_backend_config(path)
    assert "broker.session_expiry_s" in str(exc.value)
