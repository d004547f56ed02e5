"""A deposit finding on the board (SPEC 7.10.2), both interpreters: the
backend's signed `deposit` message on the acks topic, verified by the sync
rules in firmware/umqtt_link.py, raises deposit_short / deposit_missing on
the board's LED and display and in its journal, as on the Linux agent; a
message with a wrong signature raises nothing but the security alert."""

from daozhang.agent.core import cbor
from daozhang.agent.core.journal import record
from daozhang.agent.core.journal.layout import Geometry
from daozhang.agent.core.journal.ring_storage import MemoryStorage
from daozhang.agent.core.sync import deposit_alert
from daozhang.firmware.micro_journal import MicroJournal
from daozhang.firmware.terminal import Outputs, Terminal

from portable import kit
from portable.test_umqtt_link import BACKEND_PUB, DEVICE, Driver, fake_sign

DAY = 86400000


def _board():
    geo = Geometry(8192, 6, kit.JOURNAL_ID, DEVICE, kit.CREATED_MS)
    storage = MemoryStorage(bytearray(geo.encode() + bytes(geo.file_size - 4096)))
    led, display = kit.Pin(), kit.Display()
    terminal = Terminal(MicroJournal(storage, None, kit.StepClock(wall_ms=kit.CREATED_MS + 400 * DAY)),
                        kit.PROFILE, kit.calendar(), Outputs(led, None, display))
    d = Driver(deposit=terminal.deposit)
    d.link.alert = lambda kind, severity, detail: terminal.link_alert(kind, severity, detail)   # as main() wires it
    d.turn()
    return terminal, d, led, storage


def _finding(sign=fake_sign, **change):
    payout = {"day": "2030-01-02", "status": "deposit_short", "expected": 30000, "received": 29000,
              "sales": ["MCU-1", "MCU-2"]}
    payout.update(change)
    from daozhang.agent.core.journal import checkpoint
    return deposit_alert.encode(DEVICE, b"\x05" * 16, kit.CREATED_MS + 400 * DAY, payout, "CNY",
                                checkpoint.key_id(BACKEND_PUB), sign)


def test_a_signed_deposit_finding_raises_the_alert_on_the_board():
    terminal, d, led, storage = _board()
    d.deliver("acks", _finding())
    firing = [(a["kind"], a["key"]) for a in terminal.alerts.firing()]
    assert firing == [("deposit_short", "2030-01-02")]
    assert led.value() == 1
    journaled = [r.payload for r in kit.records(storage, terminal.journal.ring) if r.type == record.TYPE_ALERT]
    assert [(p["kind"], p["key"], p["amount"]) for p in journaled][-1] == ("deposit_short", "2030-01-02", 1000)
    d.deliver("acks", _finding())                      # redelivered: the same alert, nothing new
    assert len(terminal.alerts.firing()) == 1
    d.deliver("acks", _finding(status="deposit_missing", received=None, day="2030-01-03"))
    assert sorted(a["kind"] for a in terminal.alerts.firing()) == ["deposit_missing", "deposit_short"]


def test_a_deposit_finding_with_a_wrong_signature_raises_only_a_security_alert():
    terminal, d, led, storage = _board()
    d.deliver("acks", _finding(sign=lambda data: b"\x00" * 64))
    kinds = [a["kind"] for a in terminal.alerts.firing()]
    assert "deposit_short" not in kinds and "security" in kinds
    assert cbor.loads(_finding())["kind"] == "deposit"
