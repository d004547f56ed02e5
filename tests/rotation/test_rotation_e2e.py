"""A key rotation through the real parts: the daemon (stopped for the
rotation), a TLS+ACL mosquitto, a backend worker on SQLite.  Sales before
and after the rotation are all stored and acknowledged, the backend's
registry follows the new key without any finding, and the journal verifies
with the old public key alone."""

import os

import pytest

from daozhang.agent.core.journal import checkpoint
from daozhang.signing import load_public_key, raw_public
from daozhang.cli.main import cli
from click.testing import CliRunner

from daozhang.host_tools.verify.journal import verify_journal
from dztest.agent_daemon import read_records, sale
from dztest.sync_world import wait_for
from daozhang.client import Client

pytestmark = pytest.mark.timeout(300)


def test_rotation_followed_by_the_backend_over_mqtt(tmp_path, sqlite_world):
    world = sqlite_world
    world.start_backend("b1")
    config, sock, pub = world.provision_agent("pos-rotate")
    old_public = raw_public(load_public_key(pub))
    old_pem = open(pub, "rb").read()
    agent = world.start_agent(config)
    with Client(sock) as pos:
        before = [pos.submit(sale("R-%03d" % i))["seq"] for i in range(20)]
    store = world.store()
    wait_for(lambda: (store.head("pos-rotate") or (-1,))[0] > max(before), 60, "first sales stored")
    assert agent.terminate() == 0

    result = CliRunner().invoke(cli, ["device", "rotate-key", "--config", config])
    assert result.exit_code == 0, result.output
    new_public = raw_public(load_public_key(pub))
    assert new_public != old_public

    world.start_agent(config)
    with Client(sock) as pos:
        after = [pos.submit(sale("R-%03d" % i))["seq"] for i in range(20, 40)]
    wait_for(lambda: (store.head("pos-rotate") or (-1,))[0] > max(after), 60, "later sales stored")
    assert store.findings() == []
    device = store.device("pos-rotate")
    assert bytes(device["public_key"]) == new_public
    assert bytes(device["key_id"]) == checkpoint.key_id(new_public)
    receipts = store.receipts("pos-rotate")
    assert len(receipts) == 40
    old_pub_file = tmp_path / "old.pub"
    old_pub_file.write_bytes(old_pem)
    device_dir = os.path.dirname(config)
    journal = os.path.join(device_dir, "journal.dzj")
    assert verify_journal(journal, [str(old_pub_file)], all_signatures=True).ok
    records = read_records(journal, os.path.join(device_dir, "device.key"))
    assert sum(1 for r in records if r.type == 7) == 1
