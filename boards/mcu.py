"""The microcontroller part of a board file: `[mcu]` (UART to the POS, the
display, the hardware watchdog) and `[outputs.led]`/`[outputs.buzzer]` as
GPIO numbers.  Read by boards/load.py for boards whose `[flash] kind` is
"micropython"; `daozhang device flash` turns the result into the board's
/board.json (host_tools/flash/board_json.py), which firmware/board_config.py
checks again on the board.

    [mcu]
    gpio_count = 49                      # valid pins: 0 .. gpio_count - 1
    uart = { id = 1, tx = 17, rx = 18, baud = 115200 }
    display = { kind = "ssd1306", i2c = 0, sda = 8, scl = 9, address = 60, width = 128, height = 64 }

Every error is a BoardError naming the file and the key, e.g.
`boards/x.toml: mcu.uart.tx: pin 60 is not a GPIO of this chip (0..48)`.
"""

DISPLAY_KINDS = ("none", "console", "ssd1306")
MCU_KEYS = {"gpio_count", "uart", "display", "wdt_s"}
UART_KEYS = {"id", "tx", "rx", "baud"}
DISPLAY_KEYS = {"kind", "i2c", "sda", "scl", "address", "width", "height"}
BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)


def _int(error, key, value, low, high, what):
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise error(key, "expected %s %d..%d, got %r" % (what, low, high, value))
    return value


def _table(error, key, value, allowed):
    if not isinstance(value, dict):
        raise error(key, "expected a table")
    for k in value:
        if k not in allowed:
            raise error(key + "." + k, "unknown key (allowed: %s)" % ", ".join(sorted(allowed)))
    return value


def validate_mcu(path, data, outputs, board_error):
    """{"gpio_count", "uart", "display", "wdt_ms", "led", "buzzer"} with pins as ints."""
    def error(key, message):
        return board_error(path, key, message)

    mcu = _table(error, "mcu", data.get("mcu"), MCU_KEYS)
    count = _int(error, "mcu.gpio_count", mcu.get("gpio_count"), 1, 256, "a GPIO count")
    used = {}

    def pin(key, value):
        n = _int(error, key, value, 0, 1 << 16, "a GPIO number")
        if n >= count:
            raise error(key, "pin %d is not a GPIO of this chip (0..%d)" % (n, count - 1))
        if n in used:
            raise error(key, "pin %d is already %s" % (n, used[n]))
        used[n] = key
        return n

    out = {"gpio_count": count}
    for name in ("led", "buzzer"):
        table = outputs.get(name)
        if table is None:
            out[name] = None
            continue
        if table.get("chip") != "gpio":
            raise error("outputs.%s.chip" % name, "a microcontroller board drives its own pins: "
                        "expected \"gpio\", got %r" % (table.get("chip"),))
        out[name] = {"pin": pin("outputs.%s.line" % name, table.get("line")),
                     "active_low": bool(table.get("active_low", False))}
    uart = _table(error, "mcu.uart", mcu.get("uart"), UART_KEYS)
    baud = uart.get("baud", 115200)
    if baud not in BAUDS:
        raise error("mcu.uart.baud", "expected one of %s, got %r" % (", ".join(str(b) for b in BAUDS), baud))
    out["uart"] = {"id": _int(error, "mcu.uart.id", uart.get("id"), 0, 7, "a UART number"),
                   "tx": pin("mcu.uart.tx", uart.get("tx")), "rx": pin("mcu.uart.rx", uart.get("rx")),
                   "baud": baud}
    display = _table(error, "mcu.display", mcu.get("display", {"kind": "none"}), DISPLAY_KEYS)
    kind = display.get("kind")
    if kind not in DISPLAY_KINDS:
        raise error("mcu.display.kind", "expected one of %s, got %r" % (", ".join(DISPLAY_KINDS), kind))
    out["display"] = {"kind": kind}
    if kind == "ssd1306":
        out["display"].update({
            "i2c": _int(error, "mcu.display.i2c", display.get("i2c"), 0, 7, "an I2C bus number"),
            "sda": pin("mcu.display.sda", display.get("sda")),
            "scl": pin("mcu.display.scl", display.get("scl")),
            "address": _int(error, "mcu.display.address", display.get("address", 0x3C), 8, 0x77,
                            "a 7-bit I2C address"),
            "width": _int(error, "mcu.display.width", display.get("width", 128), 8, 1024, "pixels"),
            "height": _int(error, "mcu.display.height", display.get("height", 64), 8, 1024, "pixels")})
    hb = data.get("watchdog", {}).get("heartbeat_s", 20)
    wdt_s = mcu.get("wdt_s", 3 * hb if isinstance(hb, int) else 60)
    out["wdt_ms"] = 1000 * _int(error, "mcu.wdt_s", wdt_s, 1, 3600, "seconds")
    return out
