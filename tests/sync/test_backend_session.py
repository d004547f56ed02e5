"""The backend's MQTT session (SPEC 6.10.4): a stable client id per worker,
clean_start false and a session expiry, so what the group hands a worker
while it is down waits at the broker instead of reaching no subscriber."""

import re

import pytest

from daozhang.backend.service import ConfigError, load_backend_config, worker_client_id
from daozhang.client import Client

from dztest.agent_daemon import sale
from dztest.sync_world import wait_for

BASE = '[broker]\nhost = "127.0.0.1"\n[backend]\nkey = "b.key"\ndb = "b.db"\nshare_group = "backend-0123456789abcdef"\n'


def write(tmp_path, extra):
    path = tmp_path / "backend.toml"
    path.write_text(BASE + extra)
    return str(path)


def test_the_client_id_is_the_same_across_restarts_and_differs_per_worker(tmp_path):
    one = load_backend_config(write(tmp_path, ""))
    assert one["backend"].get("worker", 1) == 1
    assert worker_client_id(one["broker"], one["backend"], "shop-srv") == "backend-shop-srv-1"
    assert worker_client_id(one["broker"], one["backend"], "shop-srv") == "backend-shop-srv-1"
    two = load_backend_config(write(tmp_path, "worker = 2\n"))
    assert worker_client_id(two["broker"], two["backend"], "shop srv/1") == "backend-shop-srv-1-2"
    named = load_backend_config(write(tmp_path, ""))
    named["broker"]["client_id"] = "backend-a"          # [broker] client_id wins
    assert worker_client_id(named["broker"], named["backend"], "x") == "backend-a"


@pytest.mark.parametrize("line, key", [("worker = 0\n", "backend.worker"),
                                       ('worker = "2"\n', "backend.worker")])
def test_bad_worker_numbers_are_refused(tmp_path, line, key):
    with pytest.raises(ConfigError) as exc:
        load_backend_config(write(tmp_path, line))
    assert key in str(exc.value)


def test_a_bad_session_expiry_is_refused(tmp_path):
    path = tmp_path / "backend.toml"
    path.write_text(BASE.replace('host = "127.0.0.1"\n', 'host = "127.0.0.1"\nsession_expiry_s = 0\n'))
    with pytest.raises(ConfigError) as exc:
        load_backend_config(str(path))
    assert "broker.session_expiry_s" in str(exc.value)


@pytest.mark.timeout(180)
def test_receipts_published_while_the_worker_is_down_wait_for_its_session(sqlite_world):
    """The agent's ack timeout is far longer than the test may wait: the
    receipts can only arrive through the worker's persistent session."""
    world = sqlite_world
    backend = world.start_backend("b1")
    log = world.broker.log()
    connected = re.findall(r"New client connected from \S+ as (backend-\S+-1) \(p5, c(\d)", log)
    assert connected and connected[-1][1] == "0", log[-2000:]   # c0: clean_start false
    config, sock, _ = world.provision_agent("pos-session", ack_timeout_s=3600)
    world.start_agent(config)
    store = world.store()
    with Client(sock) as pos:
        first = pos.submit(sale("S-00"))["seq"]
    wait_for(lambda: (store.head("pos-session") or (-1,))[0] >= first, 60, "first sale stored")
    backend.kill()
    with Client(sock) as pos:
        last = max(pos.submit(sale("S-%02d" % i))["seq"] for i in range(1, 6))
    world.start_backend("b1")
    wait_for(lambda: (store.head("pos-session") or (-1,))[0] >= last, 60,
             "sales queued in the worker's session stored (ack timeout is %ds)" % 3600)
