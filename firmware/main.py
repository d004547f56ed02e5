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
    def __init__(self, terminal, uart=None, wdt=None, ticks_ms=None, tick_every_ms=TICK_EVERY_MS, link=None,
                 mono_ms=None, mono_diff=None, service=None):
        self.terminal = terminal
        self.link = link
        self.service = service          # firmware/service_port.py: the USB service port, or None
        self.uart = uart
        self.wdt = wdt
        self.ticks_ms = ticks_ms or (lambda: terminal.journal.clock.now().wall_ms)    # the wall clock (RTC)
        # Ticks are scheduled on the monotonic clock when one is given
        # (time.ticks_ms / ticks_diff on the board): an RTC set back by NTP
        # must not stop them until the wall clock catches up.
        self.mono_ms = mono_ms or self.ticks_ms
        self.mono_diff = mono_diff or (lambda a, b: a - b)
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
        mono = self.mono_ms()
        if self._last_tick is None or self.mono_diff(mono, self._last_tick) >= self.tick_every_ms:
            self._last_tick = mono
            self.terminal.tick(now)
        if self.link is not None:
            self.link.step(now)
        if self.service is not None:
            self.service.step(mono)
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


def main(path="/board.json"):      # pragma: no cover - runs on the board only
    """Wire the board from /board.json (written by `daozhang device flash` from
    the board file: pins, UART, display, watchdog, files, MQTT; checked by
    firmware/board_config.py, whose BoardConfigError names the key)."""
    import json
    import select
    import time

    import machine

    from daozhang.agent.core.business_calendar import BusinessCalendar, FixedOffset
    from daozhang.firmware import board_config, ed25519
    from daozhang.firmware.flash_storage import FlashStorage
    from daozhang.firmware.flash_records import DirFiles
    from daozhang.firmware.micro_journal import MicroJournal
    from daozhang.firmware.sale_index_flash import FlashSaleIndex
    from daozhang.firmware.terminal import Outputs

    with open(path) as f:
        cfg = board_config.check(json.load(f))
    # A file on littlefs (JOURNAL.quarantine keeps what recovery cuts, SPEC 3.15);
    # a board with a raw journal partition uses partition_storage.PartitionStorage.
    journal = MicroJournal(FlashStorage(cfg["journal_file"]), ed25519.load_signer(cfg["key_file"]))
    with open(cfg["profile_file"]) as f:
        profile = json.load(f)
    calendar = BusinessCalendar.from_profile(profile, FixedOffset(cfg["utc_offset_s"]))
    led, buzzer, display = board_config.outputs(cfg, machine)
    u = cfg["uart"]
    uart = machine.UART(u["id"], baudrate=u["baud"], tx=u["tx"], rx=u["rx"])
    wall_ms = lambda: time.time_ns() // 1000000          # noqa: E731  (the RTC, set by NTP once online)
    link = None
    terminal = None
    acks = None
    if cfg["mqtt"] is not None:
        from daozhang.firmware.settlement_acks import BoardSettlements
        link = _umqtt_link(cfg, journal, wall_ms, lambda: terminal.release_floor(),
                           lambda kind, severity, detail: terminal.link_alert(kind, severity, detail),
                           lambda items, redelivered: acks.apply(items, redelivered), lambda: acks.status(),
                           lambda msg: terminal.deposit(msg))
    # The watchdog's sales on flash, beside the journal (firmware/sale_index_flash.py):
    # the heap stays flat however many sales await their money.
    index = FlashSaleIndex(DirFiles(cfg["journal_file"] + ".idx"), journal.ring.geo.journal_id)
    # And the alert machine's records (firmware/alert_store_flash.py), wiped
    # at each boot: an outage's overdue alerts cost the heap nothing either.
    terminal = Terminal(journal, profile, calendar, Outputs(led, buzzer, display),
                        None if link is None else (lambda actions: link.queue_alerts(actions, wall_ms())),
                        index=index, alert_files=DirFiles(cfg["journal_file"] + ".alerts"))
    # Started only now: a sale index rebuilt from the whole journal (after a
    # power cut while it was dirty) may take longer than one WDT period.
    wdt = machine.WDT(timeout=cfg["wdt_ms"])
    if link is not None:
        acks = BoardSettlements(terminal)       # settlement acks from the backend (SPEC 7.8)
    service = None
    if cfg.get("service") is not None:
        service = _service_port(cfg["service"], terminal, link, machine)
    poller = select.poll()
    poller.register(uart, select.POLLIN)
    if service is not None:
        poller.register(service.stream, select.POLLIN)

    def idle(ms):
        # Wake for the POS's bytes or the broker's, else after ms.
        if link is not None and link.client is not None:
            poller.register(link.client.sock, select.POLLIN)
        poller.poll(ms)
        if link is not None and link.client is not None:
            poller.unregister(link.client.sock)

    Loop(terminal, uart, wdt, wall_ms, link=link, mono_ms=time.ticks_ms,
         mono_diff=time.ticks_diff, service=service).run(idle=idle, idle_ms=200)


def _service_port(spec, terminal, link, machine):  # pragma: no cover - runs on the board only
    """SPEC 8 on a second USB CDC port (micropython-lib's usb-device-cdc; the
    REPL keeps the first) or on a UART to a USB-serial bridge."""
    import binascii

    from daozhang.firmware import ed25519
    from daozhang.firmware.service_port import BoardServicePort

    port = spec["port"]
    if port == "usb_cdc":
        import usb.device
        from usb.device.cdc import CDCInterface
        stream = CDCInterface()
        stream.init(timeout=0)                        # reads return at once
        usb.device.get().init(stream, builtin_driver=True)
    else:
        stream = machine.UART(port["id"], baudrate=port["baud"], tx=port["tx"], rx=port["rx"])
    keys = [binascii.unhexlify(k) for k in spec["technician_keys"]]
    return BoardServicePort(stream, terminal, keys, ed25519.verify, link=link)


def _umqtt_link(cfg, journal, wall_ms, release_floor, alert, settlements, status_extra, deposit):  # pragma: no cover
    """firmware/umqtt_link.py over umqtt.simple with TLS and the device's certificate."""
    import binascii
    import ssl
    import time

    from umqtt.simple import MQTTClient

    from daozhang.firmware import ed25519
    from daozhang.firmware.link_journal import LinkJournal
    from daozhang.firmware.umqtt_link import UmqttLink

    m = cfg["mqtt"]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_cert_chain(m["cert_file"], m["key_file"])
    context.load_verify_locations(cafile=m["ca_file"])
    context.verify_mode = ssl.CERT_REQUIRED

    def make_client():
        return MQTTClient(cfg["device_id"], m["host"], m["port"], keepalive=m["keepalive_s"], ssl=context)

    return UmqttLink(make_client, LinkJournal(journal, cfg["anchor_file"]), cfg["device_id"],
                     binascii.unhexlify(cfg["backend_pub"]), ed25519.verify, wall_ms(),
                     keepalive_s=m["keepalive_s"],
                     release_floor=release_floor, alert=alert, settlements=settlements, status_extra=status_extra,
                     deposit=deposit, ticks_ms=time.ticks_ms, ticks_diff=time.ticks_diff)


if __name__ == "__main__":
    main()
