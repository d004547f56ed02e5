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

from daozhang.agent.core.errors import LocalError
from daozhang.boards.load import GPIO_KEYS, parse_mode, parse_size
from daozhang.toml_tables import ConfigFileError, check_tables, read_toml

SECTIONS = {
    "device": {"id", "board", "key", "backend_pubkey", "technician_pubkeys", "profile"},
    "journal": {"path", "size", "segment_size"},
    "intake": {"socket", "group", "mode"},
    "watchdog": {"heartbeat_s"},
    "service_port": {"device"},
    "outputs": {"status_file", "display_file", "console", "led", "buzzer"},
    # MQTT sync (README.md, docs/SPEC.md §6); absent: journaling only.
    "mqtt": {"host", "port", "ca", "cert", "key", "keepalive", "tls", "client_id",
             "session_expiry_s"},
    "sync": {"max_inflight", "max_batch_bytes", "ack_timeout_s", "idle_checkpoint_s",
             "backoff_base_ms", "backoff_cap_ms", "near_full", "status_file", "status_interval_s",
             "stall_after_s"},
}
MQTT_KEYS = SECTIONS["mqtt"]
SYNC_KEYS = SECTIONS["sync"]
# [sync] key -> (kind, low, high): "int" whole numbers, "num" int or float.
_SYNC_RANGES = {
    "max_inflight": ("int", 1, 1000),
    "max_batch_bytes": ("int", 1024, 16 << 20),
    "backoff_base_ms": ("int", 1, 3600000),
    "backoff_cap_ms": ("int", 1, 86400000),
    "ack_timeout_s": ("num", 0.1, 86400),
    "idle_checkpoint_s": ("num", 0.1, 86400),
    "status_interval_s": ("num", 0.05, 3600),
    "near_full": ("num", 0.01, 1.0),
    "stall_after_s": ("num", 0.5, 86400),
}
REQUIRED = {"device": ("id", "key", "profile"), "journal": ("path",), "intake": ("socket",)}


ConfigError = ConfigFileError   # the one error class of every config file (daozhang/toml_tables.py)


def _resolve(base, value):
    return value if os.path.isabs(value) else os.path.normpath(os.path.join(base, value))


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_sync_tables(path, mqtt, sync, base):
    """Validate [mqtt] and [sync] (of agent.toml, or of a legacy mqtt.toml);
    return {"mqtt": {...}, "sync": {...}} with paths made absolute."""
    mqtt = dict(mqtt)
    sync = dict(sync)
    if not isinstance(mqtt.get("host"), str) or not mqtt["host"]:
        raise ConfigError(path, "mqtt.host", "missing or not text")
    port = mqtt.get("port", 8883)
    if not _is_int(port) or not 1 <= port <= 65535:
        raise ConfigError(path, "mqtt.port", "expected a port 1..65535, got %r" % (port,))
    tls = mqtt.get("tls", True)
    if not isinstance(tls, bool):
        raise ConfigError(path, "mqtt.tls", "expected true or false, got %r" % (tls,))
    for key in ("keepalive", "session_expiry_s"):
        if key in mqtt and (not _is_int(mqtt[key]) or mqtt[key] < 1):
            raise ConfigError(path, "mqtt." + key, "expected whole seconds >= 1, got %r" % (mqtt[key],))
    if "client_id" in mqtt and (not isinstance(mqtt["client_id"], str) or not mqtt["client_id"]):
        raise ConfigError(path, "mqtt.client_id", "expected text")
    for key in ("ca", "cert", "key"):
        if key in mqtt:
            if not isinstance(mqtt[key], str) or not mqtt[key]:
                raise ConfigError(path, "mqtt." + key, "expected a file path")
            mqtt[key] = _resolve(base, mqtt[key])
        elif tls:
            raise ConfigError(path, "mqtt." + key, "missing (TLS needs ca, cert and key; "
                                                   "`daozhang device provision --ca --cert --key`)")
    for key, (kind, low, high) in _SYNC_RANGES.items():
        if key not in sync:
            continue
        v = sync[key]
        ok = _is_int(v) if kind == "int" else (_is_int(v) or isinstance(v, float))
        if not ok or not low <= v <= high:
            raise ConfigError(path, "sync." + key, "expected %s %s..%s, got %r"
                              % ("a whole number" if kind == "int" else "a number", low, high, v))
    if "status_file" in sync:
        if not isinstance(sync["status_file"], str) or not sync["status_file"]:
            raise ConfigError(path, "sync.status_file", "expected a file path")
        sync["status_file"] = _resolve(base, sync["status_file"])
    return {"mqtt": mqtt, "sync": sync}


def load_agent_config(path):
    data = read_toml(path)
    base = os.path.dirname(os.path.abspath(path))
    check_tables(path, data, SECTIONS)
    for section, keys in REQUIRED.items():
        for key in keys:
            value = data.get(section, {}).get(key)
            if not isinstance(value, str) or not value:
                raise ConfigError(path, section + "." + key, "missing or not text")
    if "sync" in data and "mqtt" not in data:
        raise ConfigError(path, "sync", "a [sync] table needs an [mqtt] table (the broker)")
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
        # {"mqtt": {...}, "sync": {...}}, or None: no [mqtt] table, no sync
        # (agent/sync_plugin.py then looks for a legacy mqtt.toml).
        "sync": (check_sync_tables(path, data["mqtt"], data.get("sync", {}), base)
                 if "mqtt" in data else None),
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
