"""/board.json on the board (firmware/board_config.py), both interpreters:
a good file wires the pins the board file named (LED, buzzer active-low,
the SSD1306 display on its I2C pins); a bad one stops with the key named
and the fix implied, never a KeyError."""

from daozhang.firmware import board_config
from daozhang.firmware.display import wrap
from daozhang.firmware.terminal import Outputs

from portable import kit


def good():
    return {"device_id": "mcu-0007", "journal_file": "/state/journal.dzj", "key_file": "/state/device.seed",
            "profile_file": "/state/profile.json", "anchor_file": "/state/journal.ack",
            "utc_offset_s": 28800, "wdt_ms": 60000, "backend_pub": "ab" * 32,
            "led": {"pin": 48, "active_low": False}, "buzzer": {"pin": 47, "active_low": True},
            "uart": {"id": 1, "tx": 17, "rx": 18, "baud": 115200},
            "display": {"kind": "ssd1306", "i2c": 0, "sda": 8, "scl": 9, "address": 60, "width": 128,
                        "height": 64},
            "mqtt": {"host": "mqtt.example", "port": 8883, "keepalive_s": 30, "ca_file": "/state/ca.crt",
                     "cert_file": "/state/device-tls.crt", "key_file": "/state/device-tls.key"}}


class FakeMachine:
    """machine.Pin and machine.I2C as the board has them, remembering what was built."""

    def __init__(self):
        self.pins = {}
        self.i2c = None
        machine = self

        class Pin(kit.Pin):
            OUT = 1

            def __init__(self, number, mode=None):
                kit.Pin.__init__(self)
                machine.pins[number] = self

        class I2C:
            def __init__(self, bus, sda, scl):
                machine.i2c = (bus, sda, scl)

        self.Pin = Pin
        self.I2C = I2C


class FakePanel:
    def __init__(self, width, height, i2c, addr):
        self.addr = addr
        self.frames = []
        self.rows = []

    def fill(self, colour):
        self.rows = []

    def text(self, line, x, y, colour):
        self.rows.append((y, line))

    def show(self):
        self.frames.append(list(self.rows))


class FakeSsd1306:
    SSD1306_I2C = FakePanel


def test_a_good_board_json_drives_the_pins_it_names():
    cfg = board_config.check(good())
    machine = FakeMachine()
    led, buzzer, display = board_config.outputs(cfg, machine, FakeSsd1306)
    outputs = Outputs(led, buzzer, display)
    outputs.update({"firing": 1, "critical": 1, "display": "1 payment overdue, and a long tail of words"})
    assert machine.pins[48].value() == 1                  # LED lit, active high
    assert machine.pins[47].values[-1] == 0               # buzzer beeps: active low drives 0
    assert machine.i2c[0] == 0 and machine.i2c[1] is machine.pins[8] and machine.i2c[2] is machine.pins[9]
    frame = display.panel.frames[-1]
    assert frame[0] == (0, "1 payment overdu") and frame[1][0] == 8
    outputs.update({"firing": 0, "critical": 1, "display": ""})
    assert machine.pins[48].value() == 0 and machine.pins[47].values[-1] == 1


def test_every_key_is_checked_and_named():
    cases = [
        ("led", {"pin": "48"}, "led.pin"),
        ("uart", {"id": 1, "tx": 17, "rx": 18}, "uart.baud"),
        ("display", {"kind": "lcd"}, "display.kind"),
        ("backend_pub", "AB" * 32, "backend_pub"),
        ("mqtt", {"host": "h", "port": 70000, "keepalive_s": 30, "ca_file": "a", "cert_file": "b",
                  "key_file": "c"}, "mqtt.port"),
        ("wdt_ms", 10, "wdt_ms"),
        ("pins", {"led": 2}, "pins"),                      # the old layout: refused, named
    ]
    for key, value, named in cases:
        cfg = good()
        cfg[key] = value
        exc = kit.raises(board_config.BoardConfigError, board_config.check, cfg)
        assert exc.key == named, (key, exc.key)
        assert str(exc).startswith("board.json: " + named + ": ")
    cfg = good()
    del cfg["journal_file"]
    assert kit.raises(board_config.BoardConfigError, board_config.check, cfg).key == "journal_file"


def test_no_display_and_no_sync_are_allowed():
    cfg = good()
    cfg["display"] = {"kind": "none"}
    cfg["mqtt"] = None
    cfg["buzzer"] = None
    led, buzzer, display = board_config.outputs(board_config.check(cfg), FakeMachine())
    assert buzzer is None and display is None and led is not None


def test_wrap_cuts_to_the_panel():
    assert wrap("abcdefghij\nxy", 4, 3) == ["abcd", "efgh", "ij"]
    assert wrap("", 4, 3) == []


def test_the_optional_service_port_key_is_checked_too():
    for port in ("usb_cdc", {"id": 2, "tx": 4, "rx": 5, "baud": 115200}):
        cfg = good()
        cfg["service"] = {"technician_keys": ["cd" * 32], "port": port}
        assert board_config.check(cfg)["service"]["port"] == port
    for service, key in (({"technician_keys": [], "port": "usb_cdc"}, "service.technician_keys"),
                         ({"technician_keys": ["CD" * 32], "port": "usb_cdc"}, "service.technician_keys"),
                         ({"technician_keys": ["cd" * 32], "port": {"id": 2, "tx": 4, "rx": 5, "baud": 9}},
                          "service.port.baud"),
                         ({"technician_keys": ["cd" * 32], "port": "usb"}, "service.port"),
                         ({"technician_keys": ["cd" * 32], "port": "usb_cdc", "pin": 1}, "service.pin")):
        cfg = good()
        cfg["service"] = service
        err = kit.raises(board_config.BoardConfigError, board_config.check, cfg)
        assert err.key == key, (err.key, key)
