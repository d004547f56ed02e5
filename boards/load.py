"""Board descriptions: boards/<name>.toml, checked key by key.

`load_board("rpi4")` (a name shipped here) or `load_board("path/to/x.toml")`
returns a plain dict:

    {"path", "name", "description", "state_dir",
     "journal": {"file", "size", "segment_size", "sector_size", "scrub_bytes_per_s"}, "key": {"file"},
     "intake": {"socket", "group", "mode"}, "service_port": {"device"},
     "watchdog": {"heartbeat_s"}, "outputs": {...as agent/outputs.py reads it},
     "flash": {...}, "mcu": None or {...} (boards/mcu.py, microcontroller boards)}

Every error is a BoardError naming the file, the key and what is wrong.
"""

import os

from daozhang.agent.core.errors import LocalError
from daozhang.boards.mcu import validate_mcu
from daozhang.toml_tables import ConfigFileError, check_tables, read_toml

BOARDS_DIR = os.path.dirname(os.path.abspath(__file__))
_UNITS = {"": 1, "B": 1, "KIB": 1024, "K": 1024, "MIB": 1 << 20, "M": 1 << 20,
          "GIB": 1 << 30, "G": 1 << 30, "TIB": 1 << 40, "T": 1 << 40}
SECTIONS = {
    "paths": {"state_dir"},
    "journal": {"file", "size", "segment_size", "sector_size", "scrub_bytes_per_s"},
    "key": {"file"},
    "intake": {"socket", "group", "mode"},
    "service_port": {"device"},
    "watchdog": {"heartbeat_s"},
    "outputs": {"status_file", "display_file", "console", "led", "buzzer"},
}
GPIO_KEYS = {"chip", "line", "active_low"}
# Optional: [flash] is read by `daozhang device flash` (host_tools/flash/);
# [mcu] (boards/mcu.py) is required when [flash] kind = "micropython".
OPTIONAL_SECTIONS = {"flash", "mcu"}


BoardError = ConfigFileError   # the one error class of every config file (daozhang/toml_tables.py)


def available_boards():
    return sorted(n[:-5] for n in os.listdir(BOARDS_DIR) if n.endswith(".toml"))


def parse_size(path, key, value):
    """64MiB, 512KiB, 1048576 (an int) -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().upper()
        digits = text.rstrip("KMGTIB")
        if digits.isdigit() and text[len(digits):] in _UNITS:
            return int(digits) * _UNITS[text[len(digits):]]
    raise BoardError(path, key, "expected a size such as \"64MiB\" or 1048576, got %r" % (value,))


def parse_mode(path, key, value):
    """File mode as octal text ("0660"); only group/owner bits make sense here."""
    if not isinstance(value, str) or not value or any(c not in "01234567" for c in value):
        raise BoardError(path, key, "expected an octal mode as text, e.g. \"0660\", got %r" % (value,))
    mode = int(value, 8)
    if mode & 0o7007:
        raise BoardError(path, key, "mode %s gives access to others or sets special bits; use "
                         "0660 or 0600" % value)
    return mode


def _need(path, table, key, kind, what):
    value = table.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise BoardError(path, key, "expected %s, got %r" % (what, value))
    return value


def _gpio(path, prefix, table):
    if not isinstance(table, dict):
        raise BoardError(path, prefix, "expected a table with chip, line, active_low")
    for k in table:
        if k not in GPIO_KEYS:
            raise BoardError(path, prefix + "." + k, "unknown key (allowed: %s)" % ", ".join(sorted(GPIO_KEYS)))
    chip = table.get("chip")
    line = table.get("line")
    if not isinstance(chip, str) or not chip:
        raise BoardError(path, prefix + ".chip", "expected a gpiochip path such as /dev/gpiochip0")
    if not isinstance(line, int) or isinstance(line, bool) or not 0 <= line < 1024:
        raise BoardError(path, prefix + ".line", "expected a line number 0..1023, got %r" % (line,))
    if not isinstance(table.get("active_low", False), bool):
        raise BoardError(path, prefix + ".active_low", "expected true or false")
    return dict(table)


def _flash(path, table):
    """[flash]: max_target_size (refuse bigger targets), boot_mount; kind, chip,
    port, baud, root for MicroPython boards.  Sizes parsed, the rest as text."""
    if not isinstance(table, dict):
        raise BoardError(path, "flash", "expected a table")
    out = dict(table)
    if "max_target_size" in out:
        out["max_target_size"] = parse_size(path, "flash.max_target_size", out["max_target_size"])
    for key in ("kind", "boot_mount", "chip", "port", "root", "storage_partition"):
        if key in out and not isinstance(out[key], str):
            raise BoardError(path, "flash." + key, "expected text, got %r" % (out[key],))
    return out


def validate_board(data, path):
    check_tables(path, data, dict(SECTIONS, **{s: None for s in OPTIONAL_SECTIONS}),
                 top_keys=("name", "description"))
    for section in SECTIONS:
        if section not in data:
            raise BoardError(path, section, "missing table [%s]" % section)
    name = _need(path, data, "name", str, "the board's name as text")
    j = data["journal"]
    size = parse_size(path, "journal.size", j.get("size"))
    seg = parse_size(path, "journal.segment_size", j.get("segment_size"))
    if seg % 4096 or not 8192 <= seg <= 64 << 20:
        raise BoardError(path, "journal.segment_size", "expected a multiple of 4 KiB between 8 KiB "
                         "and 64 MiB, got %d" % seg)
    if size < 4096 + 2 * seg:
        raise BoardError(path, "journal.size", "%d bytes holds fewer than 2 segments of %d" % (size, seg))
    sector = parse_size(path, "journal.sector_size", j.get("sector_size", 512))
    if sector not in (512, 1024, 2048, 4096):
        raise BoardError(path, "journal.sector_size", "expected the storage's tear unit: 512, 1KiB, 2KiB or 4KiB, "
                         "got %d" % sector)
    scrub = parse_size(path, "journal.scrub_bytes_per_s", j.get("scrub_bytes_per_s", "256KiB"))
    if not 4096 <= scrub <= 1 << 30:
        raise BoardError(path, "journal.scrub_bytes_per_s", "expected 4KiB to 1GiB per second, got %d" % scrub)
    intake = data["intake"]
    outputs = data["outputs"]
    for k in ("led", "buzzer"):
        if k in outputs:
            _gpio(path, "outputs." + k, outputs[k])
    if not isinstance(outputs.get("console", True), bool):
        raise BoardError(path, "outputs.console", "expected true or false")
    hb = data["watchdog"].get("heartbeat_s", 20)
    if not isinstance(hb, int) or isinstance(hb, bool) or not 1 <= hb <= 3600:
        raise BoardError(path, "watchdog.heartbeat_s", "expected seconds 1..3600, got %r" % (hb,))
    flash = _flash(path, data.get("flash", {}))
    mcu = None
    if flash.get("kind") == "micropython":
        mcu = validate_mcu(path, data, outputs, BoardError)
    elif "mcu" in data:
        raise BoardError(path, "mcu", "only for a microcontroller board ([flash] kind = \"micropython\")")
    return {
        "path": path, "name": name, "description": data.get("description", ""),
        "state_dir": _need(path, data["paths"], "state_dir", str, "a directory path"),
        "journal": {"file": _need(path, j, "file", str, "a file name"), "size": size,
                    "segment_size": seg, "sector_size": sector, "scrub_bytes_per_s": scrub},
        "key": {"file": _need(path, data["key"], "file", str, "a file name")},
        "intake": {"socket": _need(path, intake, "socket", str, "a socket path"),
                   "group": intake.get("group", ""),
                   "mode": parse_mode(path, "intake.mode", intake.get("mode", "0660"))},
        "service_port": {"device": _need(path, data["service_port"], "device", str, "a device path")},
        "watchdog": {"heartbeat_s": hb},
        "outputs": dict(outputs),
        "flash": flash,
        "mcu": mcu,
    }


def load_board(name_or_path):
    """A shipped board by name (rpi4, generic-linux) or a board TOML file by path."""
    path = name_or_path
    if os.sep not in name_or_path and not name_or_path.endswith(".toml"):
        path = os.path.join(BOARDS_DIR, name_or_path + ".toml")
        if not os.path.exists(path):
            raise LocalError("unknown board %r (known: %s, or give a path to a board .toml)"
                             % (name_or_path, ", ".join(available_boards())))
    data = read_toml(path)
    return validate_board(data, path)
