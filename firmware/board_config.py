"""/board.json on the board: what `daozhang device flash` wrote from the board
file and the provisioned directory (host_tools/flash/board_json.py), checked
again here because a hand-edited or truncated file must stop the board with
a clear line on the console, not a KeyError deep in the loop.

    cfg = check(json.load(open("/board.json")))     # BoardConfigError names the key
    led, buzzer, display = outputs(cfg, machine)      # Pin-like objects, a display

Keys (all checked; unknown keys refused):
  device_id, journal_file, key_file, profile_file, anchor_file   text
  utc_offset_s   int seconds east of UTC
  wdt_ms         int, 1000..3600000
  backend_pub    64 hex digits (the backend's Ed25519 key: acks are verified with it)
  led, buzzer    null or {"pin": int, "active_low": bool}
  uart           {"id", "tx", "rx", "baud"} ints
  display        {"kind": "none" | "console" | "ssd1306", and for ssd1306 "i2c", "sda", "scl",
                  "address", "width", "height"}
  mqtt           null (no sync) or {"host": text, "port": int, "keepalive_s": int,
                  "ca_file", "cert_file", "key_file": text}
  service        optional: the USB service port (SPEC 8), {"technician_keys": [64 hex digits,
                  ...], "port": "usb_cdc" or {"id", "tx", "rx", "baud"} (a UART)}
Portable: CPython and MicroPython.
"""

TEXT_KEYS = ("device_id", "journal_file", "key_file", "profile_file", "anchor_file")
KEYS = TEXT_KEYS + ("utc_offset_s", "wdt_ms", "backend_pub", "led", "buzzer", "uart", "display", "mqtt",
                    "service")
MQTT_KEYS = ("host", "port", "keepalive_s", "ca_file", "cert_file", "key_file")
DISPLAY_KINDS = ("none", "console", "ssd1306")


class BoardConfigError(Exception):
    def __init__(self, key, message):
        super().__init__("board.json: %s: %s" % (key, message))
        self.key = key


def _int(obj, key, where, low, high):
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BoardConfigError(where + key, "expected an integer %d..%d, got %r" % (low, high, value))
    return value


def _text(obj, key, where=""):
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise BoardConfigError(where + key, "expected text, got %r" % (value,))
    return value


def _only(obj, keys, where):
    if not isinstance(obj, dict):
        raise BoardConfigError(where.rstrip("."), "expected an object, got %r" % (obj,))
    for key in obj:
        if key not in keys:
            raise BoardConfigError(where + key, "unknown key (allowed: %s)" % ", ".join(keys))


def _pin(obj, key):
    value = obj.get(key)
    if value is None:
        return None
    _only(value, ("pin", "active_low"), key + ".")
    _int(value, "pin", key + ".", 0, 255)
    if not isinstance(value.get("active_low", False), bool):
        raise BoardConfigError(key + ".active_low", "expected true or false")
    return value


def _hex_key(value):
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _uart(uart, where):
    _only(uart, ("id", "tx", "rx", "baud"), where)
    for key in ("id", "tx", "rx"):
        _int(uart, key, where, 0, 255)
    _int(uart, "baud", where, 1200, 4000000)


def _service(service):
    if service is None:
        return
    _only(service, ("technician_keys", "port"), "service.")
    keys = service.get("technician_keys")
    if not isinstance(keys, list) or not keys or not all(_hex_key(k) for k in keys):
        raise BoardConfigError("service.technician_keys",
                               "expected a list of technicians' public keys, 64 lowercase hex digits each")
    if service.get("port") != "usb_cdc":
        _uart(service.get("port"), "service.port.")


def check(cfg):
    _only(cfg, KEYS, "")
    for key in TEXT_KEYS:
        _text(cfg, key)
    _int(cfg, "utc_offset_s", "", -50400, 50400)
    _int(cfg, "wdt_ms", "", 1000, 3600000)
    if not _hex_key(cfg.get("backend_pub")):
        raise BoardConfigError("backend_pub", "expected the backend's public key as 64 lowercase hex digits")
    _pin(cfg, "led")
    _pin(cfg, "buzzer")
    _uart(cfg.get("uart"), "uart.")
    _service(cfg.get("service"))
    display = cfg.get("display")
    _only(display, ("kind", "i2c", "sda", "scl", "address", "width", "height"), "display.")
    if display.get("kind") not in DISPLAY_KINDS:
        raise BoardConfigError("display.kind", "expected one of %s, got %r"
                               % (", ".join(DISPLAY_KINDS), display.get("kind")))
    if display["kind"] == "ssd1306":
        for key, high in (("i2c", 7), ("sda", 255), ("scl", 255), ("address", 0x77), ("width", 1024),
                          ("height", 1024)):
            _int(display, key, "display.", 0, high)
    mqtt = cfg.get("mqtt")
    if mqtt is not None:
        _only(mqtt, MQTT_KEYS, "mqtt.")
        _text(mqtt, "host", "mqtt.")
        _int(mqtt, "port", "mqtt.", 1, 65535)
        _int(mqtt, "keepalive_s", "mqtt.", 5, 3600)
        for key in ("ca_file", "cert_file", "key_file"):
            _text(mqtt, key, "mqtt.")
    return cfg


def _output_pin(machine, spec):
    if spec is None:
        return None
    from daozhang.firmware.display import ActiveLowPin
    pin = machine.Pin(spec["pin"], machine.Pin.OUT)
    return ActiveLowPin(pin) if spec.get("active_low") else pin


def outputs(cfg, machine, ssd1306=None):
    """(led, buzzer, display) for Outputs, from the checked config."""
    from daozhang.firmware import display as displays
    kind = cfg["display"]["kind"]
    shown = None
    if kind == "console":
        shown = displays.ConsoleDisplay()
    elif kind == "ssd1306":
        d = cfg["display"]
        if ssd1306 is None:
            import ssd1306
        i2c = machine.I2C(d["i2c"], sda=machine.Pin(d["sda"]), scl=machine.Pin(d["scl"]))
        panel = ssd1306.SSD1306_I2C(d["width"], d["height"], i2c, addr=d["address"])
        shown = displays.Ssd1306Display(panel, d["width"], d["height"])
    return _output_pin(machine, cfg.get("led")), _output_pin(machine, cfg.get("buzzer")), shown
