"""The running daemon loads neither `cryptography` nor Babel (docs/DESIGN.md
"The daemon's memory"): its Rust module alone was 8.7 MiB of the daemon's
48 MiB budget, Babel's zh locale data 4.4 MiB.

Invariant: a real `daozhang agent run` that signs its journal, syncs over
TLS, verifies the backend's signed acks, raises an overdue alert and shows
it in its zh-CN display imports no module of either package (its own import
log, PYTHONPROFILEIMPORTTIME, lists every module it loaded) and maps no
`cryptography` extension.
"""

from daozhang.client import Client
from dztest.settlement_e2e import alerts_json, backdated_sale
from dztest.sync_world import wait_for


def test_the_daemon_imports_neither_cryptography_nor_babel(world):
    world.start_backend("b1")
    config, sock, _ = world.provision_agent("pos-imports")
    agent = world.start_agent(config, env={"PYTHONPROFILEIMPORTTIME": "1"})
    with Client(sock) as pos:
        pos.submit(backdated_sale("IMP-1", "700000000001", days_ago=5))
    wait_for(lambda: alerts_json(config).get("summary", {}).get("firing", 0) >= 1, 60,
             "the overdue sale firing on the terminal")
    # The backend acked everything: the daemon verified its signed acks.
    wait_for(lambda: world.status(config).get("backlog", 1) == 0
             and world.status(config).get("acked", 0) >= 3, 60, "every record acked")
    with open("/proc/%d/maps" % agent.proc.pid) as f:
        maps = f.read()
    agent.terminate()
    log = agent.log_tail(1 << 24).splitlines()
    # The console display, in the profile's zh-CN, money formatted.
    assert any("笔" in line and "¥100.00" in line for line in log)
    imported = [line.rsplit("|", 1)[-1].strip() for line in log if line.startswith("import time:")]
    assert "daozhang.agent.mqtt_link" in imported and "nacl.bindings" in imported
    assert [m for m in imported if m.split(".")[0] in ("cryptography", "babel")] == []
    assert "cryptography" not in maps
