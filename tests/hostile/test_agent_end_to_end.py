"""The real agent process against a careless or hostile POS (issue 12): every
form is refused with its exact code, and afterwards no byte of any file the
agent wrote (journal, both index files, alerts, the log) holds the card
numbers it was sent."""

import json
import os
import socket
import struct
import time

import pytest

from daozhang.agent.core.business_calendar import format_rfc3339
from daozhang.client import Client, Refused
from dztest.agent_daemon import AgentProcess, provision, sale

pytestmark = pytest.mark.timeout(240)

PANS = ["6222021234567894", "4111111111111111"]
FULLWIDTH = "".join(chr(0xFF10 + int(c)) for c in PANS[0])


def now_time(offset_s=0):
    return format_rfc3339(int(time.time()) + offset_s, 8 * 3600)


HOSTILE = [
    ({"pos_txn_id": "T.6222.0212.3456.7894"}, "pan_refused"),
    ({"pos_txn_id": "T_6222_0212_3456_7894"}, "pan_refused"),
    ({"pos_txn_id": "T:6222:0212:3456:7894"}, "pan_refused"),
    ({"pos_txn_id": "T62220212345678941"}, "pan_refused"),
    ({"pos_txn_id": "4111111111111111123"}, "pan_refused"),
    ({"note": "6222/0212/3456/7894"}, "pan_refused"),
    ({"note": "6222  0212\u00a03456 7894"}, "pan_refused"),
    ({"note": FULLWIDTH}, "pan_refused"),
    ({"card_type": "x6222_0212_3456_7894"}, "pan_refused"),
    ({"note": "paid 6222 0212", "operator": "3456 7894"}, "pan_refused"),
    ({"time": "9999-12-31T23:59:59+14:00"}, "time_out_of_range"),
    ({"time": "0000-01-01T00:00:00+14:00"}, "time_out_of_range"),
    ({"time": now_time(-31 * 86400)}, "time_out_of_range"),
    ({"time": now_time(2 * 86400)}, "time_out_of_range"),
]


def raw_request(sock_path, body):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(sock_path)
        s.sendall(struct.pack(">I", len(body)) + body)
        n = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))[0]
        return json.loads(s.recv(n, socket.MSG_WAITALL))


def test_hostile_pos_is_refused_and_nothing_reaches_any_file(tmp_path):
    config, sock, _ = provision(tmp_path)
    log = str(tmp_path / "agent.log")
    agent = AgentProcess(config, log)
    agent.start()
    try:
        with Client(sock) as pos:
            for i, (changes, code) in enumerate(HOSTILE):
                txn = dict(sale("H-%d" % i, time=now_time()), **changes)
                with pytest.raises(Refused) as info:
                    pos.submit(txn)
                assert info.value.code == code, (changes, info.value.code)
            # Real order numbers are accepted: a 28-digit WeChat Pay number as the id.
            wechat = pos.submit(sale("4200001234202612031234567890", time=now_time()))
            assert wechat["seq"] > 0
        doubled = json.dumps({"v": 1, "id": 7, "op": "submit",
                              "txn": sale("D-1", time=now_time(), amount=1250)})[:-2] + \
            ', "amount": 99999}}'
        reply = raw_request(sock, doubled.encode())
        assert reply["ok"] is False and reply["error"]["code"] == "bad_json"
        assert agent.terminate() == 0
    finally:
        agent.close()
    needles = [p.encode() for p in PANS] + [FULLWIDTH.encode("utf-8")] + \
        [b"6222.0212", b"6222_0212", b"6222:0212", b"0212/3456", b"62220212345678941"]
    written = [log] + [os.path.join(root, f) for root, _, files in os.walk(os.path.dirname(config))
                       for f in files]
    for path in written:
        with open(path, "rb") as f:
            data = f.read()
        for needle in needles:
            assert needle not in data, (path, needle)
