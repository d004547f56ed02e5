"""Builds the agent's MQTT sync link from agent.toml (agent/assemble.py
wires it to the settlement watchdog).

Configuration: the [mqtt] and [sync] tables of agent.toml (validated by
agent/config.py; `daozhang device provision --broker --ca --cert --key`
writes them; README.md).  Without an [mqtt] table the daemon
runs as before, journaling only.

    [mqtt]
    host = "mqtt.example.com"
    port = 8883
    ca = "ca.crt"            # the fleet CA (verifies the broker)
    cert = "device.crt"      # this device's client certificate (CN = device id)
    key = "device-tls.key"
    keepalive = 30

    [sync]
    max_inflight = 8
    max_batch_bytes = 65536
    ack_timeout_s = 15
    idle_checkpoint_s = 300
    backoff_base_ms = 500
    backoff_cap_ms = 60000
    near_full = 0.8          # journal fill that raises journal_near_full
    status_file = "sync-status.json"

Compatibility: a device provisioned before these tables existed keeps its
settings in a separate `mqtt.toml` next to agent.toml (the same two
tables); it is read only when agent.toml has no [mqtt] table.

The backend public key is the agent config's device.backend_pubkey.
"""

import os

from daozhang.agent.config import MQTT_KEYS, SYNC_KEYS, ConfigError, check_sync_tables
from daozhang.agent.damaged_link import DamagedJournalLink
from daozhang.agent.mqtt_link import MqttLink
from daozhang.signing import load_public_bytes
from daozhang.toml_tables import check_tables, read_toml

__all__ = ["MQTT_KEYS", "SYNC_KEYS", "sync_settings", "load_sync_config", "sync_config_path",
           "status_file_path", "build_link", "build_damaged_link"]


def sync_config_path(agent_config_path):
    """The legacy mqtt.toml next to agent.toml."""
    return os.path.join(os.path.dirname(os.path.abspath(agent_config_path)), "mqtt.toml")


def status_file_path(agent_config_path, sync_cfg=None):
    base = os.path.dirname(os.path.abspath(agent_config_path))
    name = (sync_cfg or {}).get("status_file", "sync-status.json")
    return name if os.path.isabs(name) else os.path.join(base, name)


def sync_settings(agent_config):
    """{"mqtt", "sync"} for a loaded agent config: its own [mqtt]/[sync]
    tables, else a legacy mqtt.toml next to it, else None (no sync)."""
    if agent_config.get("sync") is not None:
        return agent_config["sync"]
    return load_sync_config(sync_config_path(agent_config["path"]))


def load_sync_config(path):
    """A legacy mqtt.toml: {"mqtt": {...}, "sync": {...}} with paths resolved, or None if no file."""
    if not os.path.exists(path):
        return None
    data = read_toml(path)
    base = os.path.dirname(os.path.abspath(path))
    check_tables(path, data, {"mqtt": MQTT_KEYS, "sync": SYNC_KEYS})
    return check_sync_tables(path, data.get("mqtt", {}), data.get("sync", {}), base)


def core_settings(sync_cfg):
    out = {}
    for key in ("max_inflight", "max_batch_bytes", "backoff_base_ms", "backoff_cap_ms"):
        if key in sync_cfg:
            out[key] = int(sync_cfg[key])
    if "ack_timeout_s" in sync_cfg:
        out["ack_timeout_ms"] = int(float(sync_cfg["ack_timeout_s"]) * 1000)
    if "idle_checkpoint_s" in sync_cfg:
        out["idle_checkpoint_ms"] = int(float(sync_cfg["idle_checkpoint_s"]) * 1000)
    return out


def build_link(config, journal, log, alert, release_floor, settlements_hook, status_extra,
               deposit_hook=None):
    """The MQTT link (agent/mqtt_link.py) if agent.toml has [mqtt] (or a
    legacy mqtt.toml exists), else None: the daemon journals only.

    `alert(kind, severity, detail)`: the link's own alerts (security,
    journal_near_full, sync_stalled), also while it is being built (a saved
    anchor that does not match the journal); `release_floor()`: the lowest
    seq the journal must keep; `settlements_hook(items, redelivered)`:
    settlement acks that passed the common checks; `status_extra()`: a map
    merged into the retained status; `deposit_hook(msg)`: a verified deposit
    finding (SPEC 7.10.2)."""
    cfg = sync_settings(config)
    if cfg is None:
        return None
    if not config.get("backend_pubkey"):
        raise ConfigError(config["path"], "device.backend_pubkey",
                          "MQTT sync needs the backend's public key")
    backend_pub = load_public_bytes(config["backend_pubkey"])
    sync_cfg = cfg["sync"]
    return MqttLink(
        journal, config["journal"]["path"], config["device_id"], backend_pub,
        cfg["mqtt"], core_settings(sync_cfg), log=log, alert=alert,
        release_floor=release_floor, settlements_hook=settlements_hook, status_extra=status_extra,
        deposit_hook=deposit_hook,
        near_full=float(sync_cfg.get("near_full", 0.8)),
        status_file=status_file_path(config["path"], sync_cfg),
        status_interval_s=float(sync_cfg.get("status_interval_s", 1.0)),
        stall_after_s=float(sync_cfg.get("stall_after_s", 120)))


def build_damaged_link(config, log):
    """On a journal that refuses to open: the degraded link (agent/damaged_link.py)
    that carries status and alerts, so the backend hears of the damage at
    once; None without sync configured."""
    cfg = sync_settings(config)
    if cfg is None:
        return None
    return DamagedJournalLink(config["device_id"], cfg["mqtt"], log=log)
