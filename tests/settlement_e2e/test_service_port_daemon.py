"""The USB service port served by the real agent daemon: a pty stands in for
the gadget serial device; the technician's client (host_tools/usb/service_client.py)
talks to it.  Unauthenticated only `info` answers; with an enrolled key,
`alerts` and `health` carry the agent's live state."""

import os
import select

import pytest

from daozhang.signing import load_signer
from daozhang.client import Client
from daozhang.host_tools.usb.service_client import DeviceRefused, ServiceClient, load_technician_key
from dztest.agent_daemon import AgentProcess, provision
from dztest.settlement_e2e import backdated_sale, wait_alert
from dztest.usb import write_key_pair

pytestmark = pytest.mark.timeout(90)


class MasterTransport:
    """The laptop's end of the pty: the pty master fd."""

    def __init__(self, fd):
        self.fd = fd

    def read(self, timeout):
        ready, _, _ = select.select([self.fd], [], [], timeout)
        return os.read(self.fd, 65536) if ready else b""

    def write(self, data):
        os.write(self.fd, data)

    def close(self):
        pass


def test_daemon_serves_the_service_port(tmp_path):
    config, sock, pub = provision(tmp_path, device_id="pos-usb-1")
    write_key_pair(str(tmp_path / "tech"))
    master, slave = os.openpty()
    with open(config) as f:
        text = f.read()
    text = text.replace('technician_pubkeys = []', 'technician_pubkeys = ["%s"]' % (tmp_path / "tech.pub"))
    text = text.replace('device = "/dev/ttyACM0"', 'device = "%s"' % os.ttyname(slave))
    with open(config, "w") as f:
        f.write(text)
    agent = AgentProcess(config, config + ".log").start()
    try:
        with Client(sock) as pos:
            pos.submit(backdated_sale("U-1", "300000000001"))
        wait_alert(config, "settlement_overdue", "firing", "U-1")
        client = ServiceClient(MasterTransport(master), timeout=3.0)
        info = client.info()
        assert info["device_id"] == "pos-usb-1"
        assert info["device_pubkey"] == load_signer(os.path.join(os.path.dirname(config),
                                                                 "device.key")).public_bytes
        first, last = info["journal_range"]
        assert first == 0 and last >= 2          # boot, the sale, its checkpoint at least
        assert info["last_checkpoint"]["seq"] <= last
        assert info["backlog"] == last + 1       # no backend: nothing acknowledged
        assert info["alerts"] == 1
        with pytest.raises(DeviceRefused) as refused:
            client.alerts()
        assert refused.value.code == "auth_required"
        client.authenticate(load_technician_key(str(tmp_path / "tech.key")))
        alerts = client.alerts()
        assert [(a["kind"], a["key"], a["state"]) for a in alerts] == [
            ("settlement_overdue", "U-1", "firing")]
        health = client.health()
        assert health["journal"]["next_seq"] == last + 1
        assert health["clock_trusted"] is True
        assert agent.terminate() == 0
    finally:
        agent.close()
        os.close(master)
        os.close(slave)
