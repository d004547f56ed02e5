"""The conversation every sync adapter holds with a broker, in the style of
h11's ConnectionPair: a script of broker messages in, the publishes, down
PUBACKs, cursors and alerts expected out.  The paho adapter
(tests/sync/test_conversation_paho.py) and the umqtt adapter
(tests/portable/test_umqtt_link.py, CPython and MicroPython) run this same
script through a driver:

  d.append(n)          commit n transactions        d.turn()       one loop turn
  d.sent()             [(leaf, payload, retain)] published since the last call
  d.subscribed()       leaves subscribed             d.deliver(leaf, payload)
  d.down_acks()        PUBACKs sent for down messages
  d.next_seq(), d.hash_at(seq), d.cursors(), d.anchor(), d.queue_alert(alert)
  d.alerts             [(kind, severity, detail)] raised by the link
  d.device_id, d.backend_kid, d.sign(message)
No pytest here: MicroPython runs it too.
"""

from daozhang.agent.core import cbor
from daozhang.agent.core.sync import sync_messages as msgs


def receipts_ack(d, to, head=None, at=1):
    head = d.hash_at(to - 1) if head is None else head
    sig = d.sign(msgs.receipts_ack_message(d.device_id, to, head, at, d.backend_kid))
    return msgs.encode_receipts_ack(d.device_id, to, head, at, d.backend_kid, sig)


def leaves(sent):
    return [s[0] for s in sent]


def converse(d):
    # Connect: subscribe, the retained status, then the whole backlog.
    d.append(3)
    d.turn()
    assert sorted(d.subscribed()) == ["acks", "config"], d.subscribed()
    sent = d.sent()
    assert leaves(sent) == ["status", "receipts"], leaves(sent)
    status = cbor.loads(sent[0][1])
    assert status["state"] == "online" and status["dev"] == d.device_id and sent[0][2] is True
    assert status["c"]["backlog"] == d.next_seq()
    end = d.next_seq()
    assert len(cbor.loads(sent[1][1])["frames"]) == end and sent[1][2] is False

    # The backend's ack: anchor saved, cursors noted, the down PUBACK after.
    d.deliver("acks", receipts_ack(d, end))
    assert d.cursors()[0] == end and d.down_acks() == 1
    assert cbor.loads(d.anchor())["to"] == end
    assert d.alerts == [] and d.sent() == []

    # The same ack again (QoS 1 redelivery): harmless, acknowledged.
    d.deliver("acks", receipts_ack(d, end))
    assert d.down_acks() == 2 and d.alerts == [] and d.cursors()[0] == end

    # A forged head: rejected, a security alert, nothing moves.
    d.deliver("acks", receipts_ack(d, end, head=b"\x01" * 32, at=2))
    assert d.down_acks() == 3 and d.cursors()[0] == end
    assert [a[0] for a in d.alerts] == ["security"] and d.alerts[0][2]["reason"] == msgs.HEAD_MISMATCH

    # An alert transition goes up on its topic.
    d.queue_alert({"kind": "settlement_overdue", "severity": "warning", "state": "firing"})
    d.turn()
    sent = d.sent()
    assert leaves(sent) == ["alerts"], leaves(sent)
    assert cbor.loads(sent[0][1])["alert"]["kind"] == "settlement_overdue"

    # New sales: only what follows the ack goes up.
    d.append(2)
    d.turn()
    sent = d.sent()
    assert leaves(sent) == ["receipts"], leaves(sent)
    assert len(cbor.loads(sent[0][1])["frames"]) == d.next_seq() - end

    # A config message is acknowledged and changes nothing.
    d.deliver("config", cbor.dumps({"v": 1}))
    assert d.down_acks() == 4 and d.sent() == [] and d.cursors()[0] == end
    return True
