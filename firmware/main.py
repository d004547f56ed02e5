"""The microcontroller terminal's main loop: one cooperative loop, no threads.

Each step: read what the POS sent on the UART and answer it (SPEC 5.1
frames), take the payment app's queued sales (an in-firmware call,
`loop.submit(txn)`), tick the settlement watchdog and the alert machine
once a second (LED, buzzer, display), give the sync link its turn
(firmware/umqtt_link.py: receipts up, acks down), and only then feed the
hardware watchdog.  A step that raises (a flash that will not write, a bug) does
not feed it: the loop stops making progress, the WDT resets the board,
and the journal's recovery takes over on the next boot.

`main()` is the board's entry point (frozen as `main`, run at boot); it
wires machine.UART/Pin/WDT, esp32.Partition and the board's key file.
`Loop` takes everything injected, so tests run it under MicroPython's
WebAssembly port with a fake flash partition, fake pins and a fake UART.
"""

from daozhang.firmware.terminal import Refused, Terminal

TICK_EVERY_MS = 1000


class Loop:
    def __init__(self, terminal, uart=None, wdt=None, ticks_ms=None, tick_every_ms=TICK_EVERY_MS, link=None):
        self.terminal = terminal
        self.link = link
        self.uart = uart
        self.wdt = wdt
        self.ticks_ms = ticks_ms or (lambda: terminal.journal.clock.now().wall_ms)
        self.tick_every_ms = tick_every_ms
        self._last_tick = None
        self._queue = []
        self.results = []
        self.steps = 0
        self.fed = 0

    def submit(self, txn):
        """The payment app's call on the same board: the sale's receipt, now."""
        return self.terminal.take_sale(txn)

    def enqueue(self, txn):
        """Or hand the sale over and collect the result after the next step."""
        self._queue.append(txn)

    def step(self):
        if self.uart is not None and self.uart.any():
            answer = self.terminal.uart_data(self.uart.read())
            if answer:
                self.uart.write(answer)
        while self._queue:
            txn = self._queue.pop(0)
            try:
                self.results.append(self.terminal.take_sale(txn))
            except Refused as exc:
                self.results.append({"refused": exc.code, "message": str(exc)})
        now = self.ticks_ms()
        if self._last_tick is None or now - self._last_tick >= self.tick_every_ms:
            self._last_tick = now
            self.terminal.tick(now)
        if self.link is not None:
            self.link.step(now)
        self.steps += 1
        if self.wdt is not None:
            self.wdt.feed()          # only after a step that completed
            self.fed += 1

    def run(self, steps=None, idle=None, idle_ms=10):
        """`idle(ms)` between steps: on the board it waits for the broker's
        socket or the UART (select.poll), at most `ms`."""
        n = 0
        while steps is None or n < steps:
            self.step()
            n += 1
            if idle is not None:
                idle(idle_ms)


def main(board=None):            # pragma: no cover - runs on the board only
    """Wire the board (boards/esp32s3.toml: pins, UART, partition label)."""
    import json
    import time

    import esp32
    import machine

    from daozhang.agent.core.business_calendar import BusinessCalendar, FixedOffset
    from daozhang.firmware import ed25519
    from daozhang.firmware.micro_journal import MicroJournal
    from daozhang.firmware.partition_storage import PartitionStorage
    from daozhang.firmware.quarantine import QuarantineFile
    from daozhang.firmware.terminal import Outputs

    board = board or json.load(open("/board.json"))
    part = esp32.Partition.find(esp32.Partition.TYPE_DATA, label=board.get("journal_partition", "journal"))[0]
    keep = QuarantineFile(board.get("quarantine", "/journal.quarantine"))     # SPEC 3.15
    journal = MicroJournal(PartitionStorage(part, keep), ed25519.load_signer(board.get("key", "/device.key")))
    profile = json.load(open(board.get("profile", "/profile.json")))
    calendar = BusinessCalendar.from_profile(profile, FixedOffset(board.get("utc_offset_s", 28800)))
    pins = board.get("pins", {})
    outputs = Outputs(machine.Pin(pins.get("led", 2), machine.Pin.OUT),
                      machine.Pin(pins.get("buzzer", 4), machine.Pin.OUT))
    uart = machine.UART(board.get("uart", 1), baudrate=board.get("baud", 115200))
    wdt = machine.WDT(timeout=board.get("wdt_ms", 8000))
    Loop(Terminal(journal, profile, calendar, outputs), uart, wdt).run(idle=time.sleep_ms)


if __name__ == "__main__":
    main()
