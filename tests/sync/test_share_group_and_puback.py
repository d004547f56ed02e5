"""Broker engineer's notes (mqtt-topics.md 3-4): the backend's share group
must be a secret (no guessable default), and a PUBACK with reason 0x10
("no matching subscribers") is a success for the agent."""

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from daozhang.agent.mqtt_link import puback_ok
from daozhang.backend.service import ConfigError, load_backend_config, new_share_group

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
