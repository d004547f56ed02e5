"""The agent's config file, DIR/agent.toml: written at provisioning, read at start.

Relative paths are relative to the directory holding agent.toml, so the
provisioned directory can be installed anywhere (the board's state_dir).
`load_agent_config(path)` returns a dict with absolute paths and raises
ConfigError naming the file, the key and what is wrong.  `render_agent_config`
writes the TOML by hand (tomllib only reads; a writer dependency for a dozen
flat keys is not worth it).
"""

import json
import os
import tomllib

from daozhang.agent.core.errors import LocalError
from daozhang.boards.load import GPIO_KEYS, parse_mode, parse_size

SECTIONS = {
    "device": {"id", "board", "key", "backend_pubkey", "technician_pubkeys", "profile"},
    "journal": {"path", "size", "segment_size"},
    "intake": {"socket", "group", "mode"},
    "watchdog": {"heartbeat_s"},
    "service_port": {"device"},
    "outputs": {"status_file", "display_file", "console", "led", "buzzer"},
}
REQUIRED = {"device": ("id", "key", "profile"), "journal": ("path",), "intake": ("socket",)}


class ConfigError(LocalError):
    def __init__(self, path, key, message):
        super().__init__("%s: %s: %s" % (path, key, message))
        self.path = path
        self.key = key


def _resolve(base, value):
    return value if os.path.isabs(value) else os.path.normpath(os.path.join(base, value))


def load_agent_config(path):
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(path, "(file)", "cannot read: %s" % exc.strerror) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "(syntax)", "not valid TOML: %s" % exc) from None
    base = os.path.dirname(os.path.abspath(path))
    for section in data:
        if section not in SECTIONS:
            raise ConfigError(path, section, "unknown table (allowed: %s)" % ", ".join(sorted(SECTIONS)))
        if not isinstance(data[section], dict):
            raise ConfigError(path, section, "expected a table [%s]" % section)
        for key in data[section]:
            if key not in SECTIONS[section]:
                raise ConfigError(path, section + "." + key, "unknown key (allowed: %s)"
                                  % ", ".join(sorted(SECTIONS[section])))
    for section, keys in REQUIRED.items():
        for key in keys:
            value = data.get(section, {}).get(key)
            if not isinstance(value, str) or not value:
                raise ConfigError(path, section + "." + key, "missing or not text")
    dev, jr, intake = data["device"], data["journal"], data["intake"]
    techs = dev.get("technician_pubkeys", [])
    if not isinstance(techs, list) or not all(isinstance(t, str) for t in techs):
        raise ConfigError(path, "device.technician_pubkeys", "expected a list of file paths")
    group = intake.get("group", "")
    if not isinstance(group, str):
        raise ConfigError(path, "intake.group", "expected a group name as text (\"\" for none)")
    heartbeat = data.get("watchdog", {}).get("heartbeat_s", 20)
    if not isinstance(heartbeat, int) or isinstance(heartbeat, bool) or not 1 <= heartbeat <= 3600:
        raise ConfigError(path, "watchdog.heartbeat_s", "expected seconds 1..3600, got %r" % (heartbeat,))
    outputs = dict(data.get("outputs", {}))
    for k in ("led", "buzzer"):
        if k in outputs and (not isinstance(outputs[k], dict) or set(outputs[k]) - GPIO_KEYS):
            raise ConfigError(path, "outputs." + k, "expected a table of chip, line, active_low")
    for k in ("status_file", "display_file"):
        if k in outputs:
            outputs[k] = _resolve(base, outputs[k])
    return {
        "path": os.path.abspath(path),
        "device_id": dev["id"],
        "board": dev.get("board", ""),
        "key": _resolve(base, dev["key"]),
        "backend_pubkey": _resolve(base, dev["backend_pubkey"]) if dev.get("backend_pubkey") else None,
        "technician_pubkeys": [_resolve(base, t) for t in techs],
        "profile": _resolve(base, dev["profile"]),
        "journal": {"path": _resolve(base, jr["path"]),
                    "size": parse_size(path, "journal.size", jr.get("size", 64 << 20)),
                    "segment_size": parse_size(path, "journal.segment_size", jr.get("segment_size", 1 << 20))},
        "intake": {"socket": _resolve(base, intake["socket"]), "group": group,
                   "mode": parse_mode(path, "intake.mode", intake.get("mode", "0660"))},
        "watchdog": {"heartbeat_s": heartbeat},
        "service_port": {"device": data.get("service_port", {}).get("device", "")},
        "outputs": outputs,
    }


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)   # a JSON string is a TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise LocalError("config value of type %s cannot be written" % type(v).__name__)


def render_agent_config(tables, header=""):
    """TOML text from {section: {key: value or {subtable}}}, in the given order."""
    lines = [header.rstrip("\n")] if header else []
    for section, table in tables.items():
        lines.append("")
        lines.append("[%s]" % section)
        subs = []
        for key, value in table.items():
            if isinstance(value, dict):
                subs.append((key, value))
            else:
                lines.append("%s = %s" % (key, _value(value)))
        for key, sub in subs:
            lines.append("[%s.%s]" % (section, key))
            for k, v in sub.items():
                lines.append("%s = %s" % (k, _value(v)))
    return "\n".join(lines) + "\n"
