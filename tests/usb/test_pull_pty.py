"""Pull over real ptys through the agent's real ServicePort (docs/SPEC.md §8).

The device side is agent/service_port.py serving a pty slave; the laptop side
is host_tools (pyserial on the other pty); between them dztest.usb.PtyCable
tears frames, pulls the cable and flips bits.
"""

import fcntl
import json
import os
import random

import pytest

from daozhang.agent.service_port import ServicePort
from daozhang.host_tools.usb import pull as pulling
from daozhang.host_tools.usb.service_client import (
    DeviceRefused, LinkLost, SerialTransport, ServiceClient, load_technician_key)
from dztest.usb import PtyCable, write_key_pair, write_signed_journal

pytestmark = pytest.mark.timeout(120)

SEGMENT_SIZE = 16384
SEGMENT_COUNT = 24
DEVICE_ID = "dev-usb-1"


class Device:
    def __init__(self, tmp_path, cable):
        self.journal_path = str(tmp_path / "device-journal.bin")
        self.tech = write_key_pair(str(tmp_path / "tech"))
        self.tech_key = str(tmp_path / "tech.key")
        self.dev_key = write_key_pair(str(tmp_path / "device"))
        self.dev_pub = str(tmp_path / "device.pub")
        self.data = write_signed_journal(self.journal_path, str(tmp_path / "device.key"),
                                         SEGMENT_SIZE, SEGMENT_COUNT, DEVICE_ID)
        self.mtime = os.stat(self.journal_path).st_mtime_ns
        self.port = ServicePort(
            cable.device_fd, self.journal_path, DEVICE_ID, [str(tmp_path / "tech.pub")],
            callbacks={"info": lambda: {"backlog": 7, "journal_range": [1, 99],
                                        "device_pubkey": self.dev_key.public_key().public_bytes_raw()},
                       "alerts": lambda: [{"kind": "late", "seq": 12}],
                       "health": lambda: {"sync": "ok"}},
            silence=0.2, reopen_delay=0.05).start()


@pytest.fixture
def rig(tmp_path):
    cable = PtyCable(seed=3)
    device = Device(tmp_path, cable)
    yield cable, device
    device.port.stop()
    cable.close()


def _pull_once(path, key_path, out_dir, timeout=1.0):
    """One technician run over the port, as the CLI does it; (result, client)."""
    transport = SerialTransport(path)
    client = ServiceClient(transport, timeout=timeout, tries=10)  # patient under CI load
    try:
        info = client.info()
        client.authenticate(load_technician_key(key_path))
        source = pulling.PortSource(client, info, chunk=4096)
        try:
            return pulling.pull_journal(source, out_dir), client
        finally:
            source.close()
    finally:
        transport.close()


def _pulled(out_dir):
    with open(os.path.join(out_dir, pulling.JOURNAL_FILE), "rb") as f:
        return f.read()


def test_pull_survives_twenty_cable_cuts_and_ends_byte_identical(rig, tmp_path):
    cable, device = rig
    out_dir = str(tmp_path / "out")
    rng = random.Random(20)
    runs = 0
    while cable.cuts < 20:
        runs += 1
        assert runs <= 60, "cable cut only %d times in %d runs" % (cable.cuts, runs)
        cable.plug(cut_after=rng.randint(30, 30000))
        try:
            _pull_once(cable.tool_path, device.tech_key, out_dir)
        except LinkLost:
            pass
    state = json.load(open(os.path.join(out_dir, pulling.STATE_FILE)))
    assert len(state["segments"]) < SEGMENT_COUNT, "cuts came too late to test resuming"

    cable.plug()
    result, _ = _pull_once(cable.tool_path, device.tech_key, out_dir)
    assert result.resumed
    assert result.skipped_segments > 0
    assert _pulled(out_dir) == device.data
    report = pulling.verify_pulled_journal(os.path.join(out_dir, pulling.JOURNAL_FILE), [device.dev_pub])
    assert report.ok and report.records > 1000, [f.describe() for f in report.findings]
    # Read-only: the device's journal is untouched.
    with open(device.journal_path, "rb") as f:
        assert f.read() == device.data
    assert os.stat(device.journal_path).st_mtime_ns == device.mtime
    assert device.port.faults == 0


def test_bits_flipped_in_transit_are_caught_and_resent(rig, tmp_path):
    cable, device = rig
    cable.flip_every = 7
    out_dir = str(tmp_path / "out")
    result, client = _pull_once(cable.tool_path, device.tech_key, out_dir, timeout=0.5)
    assert cable.flips > 0
    caught = client.counters["bad_frames"] + device.port.session.counters["bad_frames"]
    assert caught > 0
    assert client.counters["resends"] + device.port.session.counters["resends"] > 0
    assert _pulled(out_dir) == device.data


def test_wrong_key_gets_only_info(rig, tmp_path):
    cable, device = rig
    stranger = write_key_pair(str(tmp_path / "stranger"))
    transport = SerialTransport(cable.tool_path)
    client = ServiceClient(transport, timeout=1.0)
    try:
        assert client.info()["device_id"] == DEVICE_ID
        with pytest.raises(DeviceRefused) as refused:
            client.authenticate(stranger)
        assert refused.value.code == "auth_failed"
        for call in (lambda: client.read(0, 16), lambda: client.segment(0, 0, 16),
                     client.alerts, client.health):
            with pytest.raises(DeviceRefused) as exc:
                call()
            assert exc.value.code == "auth_required"
        assert client.info()["backlog"] == 7
    finally:
        transport.close()
    assert device.port.session.state == "unauthenticated"


def test_missing_key_gets_only_info_from_the_cli(rig, tmp_path, capsys):
    from daozhang.cli.main import main
    cable, device = rig
    out_dir = str(tmp_path / "out")
    with pytest.raises(SystemExit) as exit_:
        main(["device", "pull", "--port", cable.tool_path, "--out", out_dir, "--timeout", "1"])
    assert exit_.value.code == 2
    assert "no technician key" in capsys.readouterr().err
    info = json.load(open(os.path.join(out_dir, "info.json")))
    assert info["device_id"] == DEVICE_ID and info["segment_count"] == SEGMENT_COUNT
    assert not os.path.exists(os.path.join(out_dir, pulling.JOURNAL_FILE))


class _Report:
    def __init__(self, findings):
        self.ok = not findings
        self.findings = findings


class _Finding:
    seq, offset, message = 41, 8192, "chain broken: prev_hash does not match"


def test_cli_pull_json_then_verification_findings_exit_1(rig, tmp_path, capsys, monkeypatch):
    from daozhang.cli.main import main
    cable, device = rig
    seen = []
    real_verify = pulling.verify_pulled_journal

    def spy_verify(path, pubkeys):
        seen.append((path, pubkeys))
        return real_verify(path, pubkeys)

    monkeypatch.setattr(pulling, "verify_pulled_journal", spy_verify)
    out_dir = str(tmp_path / "out")
    argv = ["device", "pull", "--port", cable.tool_path, "--key", device.tech_key, "--out", out_dir,
            "--device-pubkey", device.dev_pub, "--json", "--timeout", "1"]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["event"] == "start"
    assert any(line["event"] == "progress" for line in lines)
    assert lines[-1]["event"] == "result" and lines[-1]["intact"] is True
    assert _pulled(out_dir) == device.data
    assert seen[0][1] == [device.dev_pub]
    assert json.load(open(os.path.join(out_dir, "alerts.json")))["alerts"][0]["kind"] == "late"

    def finds_tampering(path, pubkeys):
        seen.append((path, pubkeys))
        return _Report([_Finding()])

    monkeypatch.setattr(pulling, "verify_pulled_journal", finds_tampering)
    argv.remove("--json")  # human output this time
    del argv[argv.index("--device-pubkey"):argv.index("--device-pubkey") + 2]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 1
    out = capsys.readouterr()
    assert "journal NOT intact" in out.out and "seq 41" in out.out
    assert "0 segments pulled, 24 unchanged and skipped" in out.out
    # Without --device-pubkey the key the device reported in info is used, and said so.
    assert seen[1][1] == [device.dev_key.public_key().public_bytes_raw()]


def test_service_port_opens_the_journal_read_only(rig):
    _, device = rig
    flags = fcntl.fcntl(device.port.journal._fd, fcntl.F_GETFL)
    assert flags & os.O_ACCMODE == os.O_RDONLY


def test_port_survives_a_garbage_flood_and_half_frames(rig, tmp_path):
    import serial
    from daozhang.agent.core.service.service_frames import REQUEST, Frame, FrameCodec
    cable, device = rig
    rng = random.Random(5)
    port = serial.Serial(cable.tool_path, timeout=0.05)
    try:
        half = FrameCodec().send(Frame(REQUEST, 1, {"cmd": "auth_begin"}))[:20]
        for _ in range(20):
            port.write(bytes(rng.getrandbits(8) for _ in range(4000)) + half)
            port.read(65536)  # drain the NAKs
    finally:
        port.close()
    assert device.port.session.counters["naks_sent"] > 0
    result, _ = _pull_once(cable.tool_path, device.tech_key, str(tmp_path / "out"))
    assert _pulled(str(tmp_path / "out")) == device.data
    assert device.port.faults == 0
