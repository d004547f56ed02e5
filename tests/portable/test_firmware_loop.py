"""firmware/main.py's loop on a fake NOR flash partition, both interpreters:
sales in by call and by UART frame, receipts out, the settlement watchdog
lighting the LED for an overdue sale, the WDT fed only after a step that
completed, and power cut after every block operation of a commit."""

import gc
import json
import struct

from daozhang.agent.core.intake import intake_frames, receipt
from daozhang.agent.core.journal import layout, ring_storage
from daozhang.firmware.main import Loop
from daozhang.firmware.micro_journal import MicroJournal
from daozhang.firmware.partition_storage import PartitionStorage, format_partition, invert
from daozhang.firmware.quarantine import QuarantineFile
from daozhang.firmware.terminal import Outputs, Terminal

from portable import kit
from portable.fake_partition import FakePartition, PowerCut

DAY = 86400000
SEGMENT, SEGMENTS = 8192, 6
BLOCKS = (layout.SUPERBLOCK_SIZE + SEGMENT * SEGMENTS) // 4096 + 2


def _geometry():
    return layout.Geometry(SEGMENT, SEGMENTS, kit.JOURNAL_ID, "mcu-pos-1", kit.CREATED_MS)


def _storage(part):
    """The board's journal storage: the partition, and the quarantine file recovery keeps cuts in."""
    return PartitionStorage(part, part.keep)


def _terminal(part, clock, signer=None, outputs=None):
    journal = MicroJournal(_storage(part), signer, clock)
    return Terminal(journal, kit.PROFILE, kit.calendar(), outputs)


def _fresh(cut_after=None):
    part = FakePartition(BLOCKS)
    part.keep = QuarantineFile(kit.scratch_path("journal.quarantine"))
    format_partition(part, _geometry().encode())
    part.cut_after = None if cut_after is None else part.ops + cut_after
    return part


def test_sale_by_call_and_by_uart_get_receipts():
    part = _fresh()
    clock = kit.StepClock(wall_ms=kit.CREATED_MS + 400 * DAY)
    uart = kit.UART()
    loop = Loop(_terminal(part, clock), uart, kit.WDT())
    result = loop.submit(kit.sale(1, clock.wall_ms))
    assert result["pos_txn_id"] == "MCU-1"
    assert receipt.decode(result["receipt"])["seq"] == result["seq"]
    uart.rx = intake_frames.encode({"v": 1, "id": 7, "op": "submit", "txn": kit.sale(2, clock.wall_ms)}) \
        + intake_frames.encode({"v": 1, "id": 8, "op": "submit", "txn": dict(kit.sale(3, clock.wall_ms),
                                                                           card="6222020000000001")})
    loop.step()
    answers = []
    data = uart.tx
    while data:
        n = struct.unpack(">I", data[:4])[0]
        answers.append(json.loads(data[4:4 + n]))
        data = data[4 + n:]
    assert answers[0]["ok"] and answers[0]["id"] == 7
    assert receipt.decode(answers[0]["result"]["receipt"])["seq"] == answers[0]["result"]["seq"]
    assert not answers[1]["ok"] and answers[1]["id"] == 8      # a full card number: refused
    for form in (b"6222020000000001", invert(b"6222020000000001")):     # flash holds bytes inverted
        assert form not in part.image()


def test_overdue_sale_lights_the_led_and_the_display():
    part = _fresh()
    clock = kit.StepClock(wall_ms=kit.CREATED_MS + 400 * DAY)
    led, buzzer, display, wdt = kit.Pin(), kit.Pin(), kit.Display(), kit.WDT()
    now = [clock.wall_ms]
    loop = Loop(_terminal(part, clock, outputs=Outputs(led, buzzer, display)), None, wdt, lambda: now[0])
    loop.submit(kit.sale(1, clock.wall_ms, amount=9900))
    loop.step()
    assert led.value() == 0
    now[0] += 4 * DAY
    for _ in range(3):
        loop.step()
        now[0] += 3600000
    assert led.value() == 1
    assert "overdue" in display.lines[-1]
    assert wdt.feeds == loop.steps == 4


def test_wdt_is_not_fed_when_a_step_fails():
    part = _fresh()
    clock = kit.StepClock(wall_ms=kit.CREATED_MS + 400 * DAY)
    wdt = kit.WDT()
    loop = Loop(_terminal(part, clock), None, wdt)
    loop.step()
    part.cut_after = part.ops + 1          # the flash dies under the next commit
    loop.enqueue(kit.sale(1, clock.wall_ms))
    kit.raises(PowerCut, loop.step)
    assert wdt.feeds == 1


def test_power_cut_after_any_block_operation_loses_no_committed_sale():
    # Unsigned (flagged outage) commits: the same writes, without 40 x 85
    # signatures on MicroPython; tests/firmware/test_firmware_journal.py signs.
    signer = None
    cut = 1
    kept_torn = [0]
    while True:
        gc.collect()        # the WebAssembly port grows its heap rather than collect on its own
        part = _fresh(cut_after=cut)
        clock = kit.StepClock(wall_ms=kit.CREATED_MS + 400 * DAY)
        committed = []
        try:
            loop = Loop(_terminal(part, clock, signer), None, kit.WDT())
            for n in range(40):                    # 40 signed sales: into a third segment
                committed.append(loop.submit(kit.sale(n, clock.wall_ms, amount=100 + n))["seq"])
        except PowerCut:
            pass
        else:
            break                                  # the cut fell past the workload: every case done
        part.revive()
        storage = _storage(part)
        ring = ring_storage.open_ring(storage)
        assert ring.next_seq >= (committed[-1] + 1 if committed else 0), cut
        found = [r.seq for r in kit.records(storage, ring)]
        assert all(seq in found for seq in committed), cut
        kept = part.keep.entries()                 # a torn commit's bytes: kept whole, never a committed one
        assert all(ok for _, _, ok in kept), cut
        if ring.recovered.get("cut_bytes"):
            assert kept[-1][0] == ring.recovered["cut_offset"] and len(kept[-1][1]) == ring.recovered["cut_bytes"]
            kept_torn[0] += 1
        MicroJournal(storage, signer, clock).append(1, kit.sale(99, clock.wall_ms))   # and it writes on
        cut += 1
    assert cut > 40
    assert kept_torn[0] > 0                        # some cuts did tear a commit, and recovery kept it


def test_settlement_ack_resolves_the_overdue_alert_and_turns_the_led_off():
    from daozhang.agent.core.business_calendar import parse_rfc3339_ms
    from daozhang.agent.core.settlement.fees import contracted_fee
    part = _fresh()
    clock = kit.StepClock(wall_ms=kit.CREATED_MS + 400 * DAY)
    led = kit.Pin()
    now = [clock.wall_ms]
    loop = Loop(_terminal(part, clock, outputs=Outputs(led)), None, kit.WDT(), lambda: now[0])
    t = kit.sale(5, clock.wall_ms, amount=20000)
    loop.submit(t)
    now[0] += 4 * DAY
    loop.step()
    loop.step()
    assert led.value() == 1
    fee = contracted_fee(20000, "debit", kit.PROFILE["fees"], False)
    row = {"acquirer_ref": "A5", "merchant_id": t["merchant_id"], "terminal_id": t["terminal_id"],
           "rrn": t["rrn"], "auth_code": t["auth_code"], "txn_time": parse_rfc3339_ms(t["time"]),
           "kind": "sale", "card": t["card"], "amount": 20000, "fee": fee, "settled_amount": 20000 - fee,
           "settled_at": now[0], "mcc": 5812, "region": 2900}
    loop.terminal.settlement(row, now[0])
    now[0] += 3600000
    loop.step()
    assert led.value() == 0


def test_ticks_follow_the_monotonic_clock_when_the_rtc_is_set_back():
    part = _fresh()
    clock = kit.StepClock(wall_ms=kit.CREATED_MS + 400 * DAY)
    wall, mono = [clock.wall_ms], [0]
    loop = Loop(_terminal(part, clock), None, kit.WDT(), lambda: wall[0], mono_ms=lambda: mono[0])
    ticked = []
    tick = loop.terminal.tick
    loop.terminal.tick = lambda now: ticked.append(now) or tick(now)
    loop.step()
    wall[0] -= 3600000                  # NTP sets the RTC an hour back
    for _ in range(3):
        wall[0] += 1000
        mono[0] += 1000
        loop.step()
    assert len(ticked) == 4 and ticked[1] < ticked[0]      # ticks go on; the watchdog gets the RTC's time
