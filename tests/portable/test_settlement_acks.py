"""Settlement acks on the board (firmware/settlement_acks.py), both
interpreters: a batch is one journal commit and resolves its sale; the same
ack again changes nothing; the same id with other bytes is a `replay`, an ack
older than the watch window is `stale` (both refused with a security alert);
every ack processed moves the confirmation cursor, in order."""

from daozhang.agent.core.business_calendar import parse_rfc3339_ms
from daozhang.agent.core.journal.layout import Geometry
from daozhang.agent.core.journal.ring_storage import MemoryStorage
from daozhang.agent.core.settlement.fees import contracted_fee
from daozhang.firmware.micro_journal import MicroJournal
from daozhang.firmware.settlement_acks import BoardSettlements
from daozhang.firmware.terminal import Outputs, Terminal

from portable import kit

DAY = 86400000


def _board():
    geo = Geometry(8192, 6, kit.JOURNAL_ID, "mcu-pos-1", kit.CREATED_MS)
    storage = MemoryStorage(bytearray(geo.encode() + bytes(geo.file_size - 4096)))
    clock = kit.StepClock(wall_ms=kit.CREATED_MS + 400 * DAY)
    led = kit.Pin()
    terminal = Terminal(MicroJournal(storage, None, clock), kit.PROFILE, kit.calendar(), Outputs(led))
    return terminal, clock, led


def _ack(n, txn, at, ack_id=None, ref="A1"):
    fee = contracted_fee(txn["amount"], "debit", kit.PROFILE["fees"], False)
    row = {"acquirer_ref": ref, "merchant_id": txn["merchant_id"], "terminal_id": txn["terminal_id"],
           "rrn": txn["rrn"], "auth_code": txn["auth_code"], "txn_time": parse_rfc3339_ms(txn["time"]),
           "kind": "sale", "card": txn["card"], "amount": txn["amount"], "fee": fee,
           "settled_amount": txn["amount"] - fee, "settled_at": at, "mcc": 5812, "region": 2900}
    msg = {"id": ack_id or (b"%d" % n) * 16, "n": n, "at": at, "row": row}
    return msg, b"payload-%d-%s" % (n, ref.encode())


def test_a_batch_resolves_its_sale_once_and_moves_the_cursor():
    terminal, clock, led = _board()
    txn = kit.sale(1, clock.wall_ms, amount=20000)
    terminal.take_sale(txn)
    terminal.tick(clock.wall_ms + 4 * DAY)
    assert led.value() == 1
    acks = BoardSettlements(terminal)
    before = terminal.journal.ring.next_seq
    result = acks.apply([_ack(1, txn, clock.wall_ms)])
    assert result == {"settle_n": 1, "moved": True, "rejected": []}
    assert terminal.journal.ring.next_seq > before        # journaled (type 2)
    assert led.value() == 0 and acks.applied == 1 and acks.status() == {"settle_n": 1}
    again = acks.apply([_ack(1, txn, clock.wall_ms)], True)
    assert again == {"settle_n": 1, "moved": False, "rejected": []} and acks.applied == 1


def test_replay_and_stale_are_refused_and_out_of_order_waits_for_the_gap():
    terminal, clock, led = _board()
    txns = [kit.sale(i, clock.wall_ms, amount=1000 + i) for i in range(3)]
    for t in txns:
        terminal.take_sale(t)
    acks = BoardSettlements(terminal)
    first = _ack(1, txns[0], clock.wall_ms)
    acks.apply([first])
    forged = (first[0], first[1] + b"!")                  # same id, other bytes
    assert acks.apply([forged])["rejected"] == ["replay"]
    stale = _ack(3, txns[2], clock.wall_ms - 60 * DAY, ref="A3")
    result = acks.apply([stale])
    assert result["rejected"] == ["stale"] and result["settle_n"] == 1     # 3 done, 2 missing
    result = acks.apply([_ack(2, txns[1], clock.wall_ms, ref="A2")])
    assert result == {"settle_n": 3, "moved": True, "rejected": []}
    kinds = [a.get("kind") for a in terminal.alerts.firing()]
    assert "security" in kinds


def test_the_links_alerts_reach_the_outputs_and_clear():
    terminal, clock, led = _board()
    terminal.link_alert("sync_stalled", "warning", {"reason": "no_ack"})
    assert led.value() == 1 and [a["kind"] for a in terminal.alerts.firing()] == ["sync_stalled"]
    terminal.link_alert("sync_stalled", "info", {"state": "clear"})
    assert led.value() == 0 and terminal.alerts.firing() == []
    terminal.link_alert("not_a_kind", "warning", {})         # unknown: dropped, nothing raised
    assert terminal.alerts.firing() == []
