"""The sync core is portable: the same scenario on MicroPython and CPython
gives the same actions, byte for byte; and the agent re-checks its saved
anchor at start (a rolled-back journal is a security alert)."""

import os

import pytest

from daozhang.agent.core import cbor
from daozhang.agent.mqtt_link import MqttLink
from daozhang.agent.ack_anchor import save_anchor
from daozhang.backend.ack import AckSigner

from dztest.micropython import run_micropython
from dztest.sync import make_journal, signer

pytestmark = pytest.mark.timeout(300)

# Signatures are an input: a fake verify keeps MicroPython (no Ed25519) and
# CPython on the same path; the real check is exercised in test_sync_core.
SCENARIO = r'''
from daozhang.agent.core import cbor
from daozhang.agent.core.sync import sync_messages as msgs
from daozhang.agent.core.sync.sync_core import SyncCore

PUB = b"\x01" * 32
KID = b"\x02" * 8
def verify(pub, message, sig):
    return sig == b"\x05" * 64 and pub == PUB
hashes = {}
def hash_at(seq):
    return hashes.get(seq)
core = SyncCore("pos-mp", PUB, KID, verify, hash_at, 0, 0, {"max_batch_bytes": 100})
out = []
def show(actions):
    for a in actions:
        out.append(cbor.dumps([x if not isinstance(x, dict) else sorted(x.items()) for x in a]).hex())
show(core.poll(0))
show(core.connected(10))
core.journal_progress(3)
core.queue_alert(b"alert")
acts = core.poll(20)
show(acts)
frames = [(0, 1, b"\xaa" * 60), (1, 8, b"\xbb" * 50)]
hashes[1] = b"\x07" * 32
show(core.frames(frames, 2, b"\x07" * 32, 30))
ack = msgs.encode_receipts_ack("pos-mp", 2, b"\x07" * 32, 40, KID, b"\x05" * 64)
show(core.message("acks", ack, 41))
show(core.message("acks", ack, 42))
show(core.message("acks", msgs.encode_receipts_ack("pos-mp", 9, b"\x07" * 32, 40, KID, b"\x05" * 64), 43))
show(core.message("acks", msgs.encode_receipts_ack("pos-xx", 2, b"\x07" * 32, 40, KID, b"\x05" * 64), 44))
show(core.message("acks", b"\x00\x01", 45))
show(core.lost(50, 0.5, "gone"))
print("\n".join(out))
print(core.acked, core.next_send, core.retry_at, sorted(core.rejected.items()))
'''


def test_core_runs_the_same_on_micropython_and_cpython(capsys):
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(SCENARIO, "scenario", "exec"), {})
    expected = buf.getvalue()
    assert "2 2 " in expected.splitlines()[-1]
    assert run_micropython(SCENARIO) == expected


def test_anchor_beyond_the_journal_is_a_security_alert(tmp_path):
    path, journal = make_journal(tmp_path)
    backend = AckSigner(signer(9))
    save_anchor(path, backend.receipts_ack("pos-sync-1", 500, bytes(32), 1))   # journal holds 2
    alerts = []
    link = MqttLink(journal, path, "pos-sync-1", backend.public_bytes, {"host": "127.0.0.1"},
                    alert=lambda kind, sev, detail: alerts.append((kind, detail)))
    assert alerts and alerts[0][0] == "security"
    assert link.position()["acked"] == 0
    journal.close()


def test_valid_anchor_restores_acked_after_restart(tmp_path):
    path, journal = make_journal(tmp_path)
    backend = AckSigner(signer(9))
    from daozhang.agent.frame_reader import FrameReader
    head = FrameReader(journal).hash_at(1)
    save_anchor(path, backend.receipts_ack("pos-sync-1", 2, head, 1))
    link = MqttLink(journal, path, "pos-sync-1", backend.public_bytes, {"host": "127.0.0.1"})
    assert link.position()["acked"] == 2 and journal.noted_cursors() == (2, 2)
    assert cbor.loads(open(path + ".ack", "rb").read())["to"] == 2
    assert os.path.exists(path + ".ack")
    journal.close()
