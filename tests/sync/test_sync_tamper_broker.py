"""Tampering over the real broker (SPEC 6.5, 6.7).

Down: forged, replayed, beyond-head, other-device and malformed acks,
published on the device's acks topic with the backend's own certificate
(the only identity the ACL lets write there): each is rejected, counted,
alerted (the security alerts reach the backend), and the agent's cursors
and anchor do not move.
Up: a fork and a gap injected on the device's receipts topic (with the
device's certificate) are findings in the backend, never acknowledged.
"""

import os
import re

import pytest

from daozhang.agent.core import cbor
from daozhang.agent.core.journal import record
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.agent.ack_anchor import load_anchor
from daozhang.backend.ack import AckSigner
from daozhang.client import Client

from dztest.agent_daemon import sale
from dztest.sync import signer
from dztest.sync_world import SyncWorld, wait_for

pytestmark = pytest.mark.timeout(200)


@pytest.fixture
def world(tmp_path, tls_broker):
    w = SyncWorld(tmp_path, tls_broker, str(tmp_path / "backend.db"))
    w.start_backend("b1", gap_grace_s=1)
    yield w
    w.close()


def journal_frames(config, start, count):
    """Frames of committed records, read from a copy of the journal."""
    import shutil
    import tempfile
    from daozhang.agent.journal_file import JournalFile
    from daozhang.signing import load_signer
    from daozhang.agent.frame_reader import FrameReader
    d = tempfile.mkdtemp()
    copy = os.path.join(d, "j")
    shutil.copyfile(os.path.join(os.path.dirname(config), "journal.dzj"), copy)
    j = JournalFile.open(copy, load_signer(os.path.join(os.path.dirname(config), "device.key")), boot=False)
    try:
        recs, _, _ = FrameReader(j).read(start, 1 << 20)
        return [r[2] for r in recs[:count]]
    finally:
        j.close()
        shutil.rmtree(d, ignore_errors=True)


def test_tampered_acks_over_the_broker(world, tls_broker):
    config, sock, pub = world.provision_agent("pos-tamper")
    agent = world.start_agent(config)
    with Client(sock) as pos:
        for i in range(20):
            pos.submit(sale("T-%d" % i))
    journal_path = os.path.join(os.path.dirname(config), "journal.dzj")
    wait_for(lambda: world.status(config).get("acked", 0) >= 40 and
             world.status(config).get("in_flight") == 0, 30, "agent synced")
    before = world.status(config)
    anchor = load_anchor(journal_path)
    acked = cbor.loads(anchor)["to"]
    head = cbor.loads(anchor)["head"]
    backend = AckSigner.from_file(world.backend_key + ".key")
    forged = AckSigner(signer(77))
    old_frames = journal_frames(config, 0, 5)
    old_head = record.decode_at(old_frames[4], 0).hash
    bad = [
        forged.receipts_ack("pos-tamper", acked, head, 1),            # wrong key
        backend.receipts_ack("pos-tamper", 5, old_head, 1),           # replay of an older ack
        backend.receipts_ack("pos-tamper", acked + 1000, bytes(32), 1),  # beyond the head
        backend.receipts_ack("pos-other", acked, head, 1),            # for another device
        b"\xff\x00garbage",                                           # malformed
    ]
    probe = tls_broker.connect("backend")
    for payload in bad:
        probe.publish("daozhang/v1/pos-tamper/acks", payload)
    wait_for(lambda: world.status(config).get("rejected", 0) >= len(bad), 30, "rejections counted")
    after = world.status(config)
    assert after["rejected_by_reason"] == {msgs.UNKNOWN_KEY: 1, msgs.REPLAY: 1,
                                           msgs.BEYOND_HEAD: 1, msgs.WRONG_DEVICE: 1,
                                           msgs.MALFORMED: 1}
    # Nothing the rejected messages said was adopted.  (The cursor still
    # moves: the security alerts are journaled and synced like any record,
    # and every cursor value the agent took is an ack the backend sent.)
    backend_proc = world.backends[0]
    with open(config + ".log") as f:
        adopted = [int(x) for x in re.findall(r"event=sync_acked .*?to=(\d+)", f.read())]
    assert set(adopted) <= set(backend_proc.acks_sent())
    assert after["acked"] >= before["acked"]
    assert load_anchor(journal_path) not in bad
    assert anchor not in bad
    assert agent.proc.poll() is None                    # never crashed
    store = world.store()
    wait_for(lambda: sum(1 for a in store.alerts("pos-tamper") if a["kind"] == "security") >= len(bad),
             30, "security alerts at the backend")
    # Still syncing afterwards.
    with Client(sock) as pos:
        pos.submit(sale("T-after"))
    wait_for(lambda: any(r["payload"].get("pos_txn_id") == "T-after"
                         for r in store.receipts("pos-tamper")), 30, "sync after tampering")
    status = world.cli("agent", "status", "--config", config, "--json")
    assert '"rejected": 5' in status


def test_fork_and_gap_on_the_wire(world, tls_broker):
    config, sock, pub = world.provision_agent("pos-wire")
    agent = world.start_agent(config)
    with Client(sock) as pos:
        for i in range(10):
            pos.submit(sale("W-%d" % i))
    store = world.store()
    wait_for(lambda: len(store.receipts("pos-wire")) == 10, 30, "receipts stored")
    agent.terminate()
    head = store.head("pos-wire")[0]             # what the backend holds, chained
    frames = journal_frames(config, 0, head + 1)
    rec = record.decode_at(frames[3], 0)
    body = [rec.seq, rec.prev, rec.wall_ms, rec.boot_id, rec.mono_ms, dict(rec.payload, amount=1)]
    fork = record.encode(rec.type, rec.flags, *body)[0]
    probe = tls_broker.connect("pos-wire")             # the device's own identity
    probe.publish("daozhang/v1/pos-wire/receipts", msgs.encode_receipts("pos-wire", [fork]))
    # A gap: records beyond the stored head, validly chained among themselves.
    later = _continue_chain(frames[head], 5)
    probe.publish("daozhang/v1/pos-wire/receipts", msgs.encode_receipts("pos-wire", later[2:]))
    wait_for(lambda: {"fork", "gap"} <= {f["kind"] for f in store.findings("pos-wire")}, 90,
             "fork and gap findings")
    assert store.head("pos-wire")[0] == head           # nothing acknowledged past the gap
    stored = store.records("pos-wire", from_seq=3, to_seq=3)[0]
    assert stored["frame"] == frames[3]                  # the first record stays


def _continue_chain(last_frame, count):
    """`count` transaction frames that continue the chain after last_frame."""
    prev = record.decode_at(last_frame, 0)
    out = []
    seq, h = prev.seq + 1, prev.hash
    for i in range(count):
        frame, h2 = record.encode(record.TYPE_TRANSACTION, 0, seq, h, prev.wall_ms, prev.boot_id,
                                  prev.mono_ms, {"kind": "sale", "pos_txn_id": "G-%d" % i})
        out.append(frame)
        seq, h = seq + 1, h2
    return out


def test_tls_refusal_cause_is_named_in_the_log(world, tls_broker):
    """An expired client certificate: the agent keeps journaling, and its log
    says why it cannot connect."""
    config, sock, pub = world.provision_agent("dev-a")
    expired = tls_broker.pki.expired
    mqtt_toml = os.path.join(os.path.dirname(config), "mqtt.toml")
    with open(mqtt_toml) as f:
        text = f.read()
    cert = tls_broker.pki.identity("dev-a")
    with open(mqtt_toml, "w") as f:
        f.write(text.replace(cert.cert, expired.cert).replace(cert.key, expired.key))
    agent = world.start_agent(config)

    def log():
        with open(config + ".log") as f:
            return f.read()
    wait_for(lambda: "cause=\"tls:" in log() and "expired" in log(), 30, "a named TLS cause")
    with Client(sock) as pos:
        assert pos.submit(sale("X-1"))["seq"] > 0          # journaling goes on
    assert agent.proc.poll() is None
