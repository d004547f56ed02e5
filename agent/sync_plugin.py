"""Plugs MQTT sync into the agent daemon (agent/daemon.py's PLUGINS hook).

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
from daozhang.toml_tables import check_tables, read_toml
from daozhang.agent.inactive_plugin import InactivePlugin

__all__ = ["MQTT_KEYS", "SYNC_KEYS", "sync_settings", "load_sync_config", "sync_config_path",
           "status_file_path", "install"]


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


def _call_or_none(fn, *args):
    return None if fn is None else fn(*args)


class SyncPlugin:
    """The daemon plugin: builds an MqttLink once the journal is open."""

    def __init__(self, daemon, cfg):
        from daozhang.agent.mqtt_link import MqttLink
        from daozhang.signing import load_public_key, raw_public

        config = daemon.config
        if not config.get("backend_pubkey"):
            raise ConfigError(config["path"], "device.backend_pubkey",
                              "MQTT sync needs the backend's public key")
        backend_pub = raw_public(load_public_key(config["backend_pubkey"]))
        sync_cfg = cfg["sync"]
        # Set before the link exists: MqttLink may raise an alert while it is
        # being built (a saved anchor that does not match the journal).
        self._inner_alert = daemon.alert_hook
        self.link = None
        self._early_alerts = []
        self.link = MqttLink(
            daemon.journal, config["journal"]["path"], config["device_id"], backend_pub,
            cfg["mqtt"], core_settings(sync_cfg), log=daemon.log, alert=self._alert,
            # Looked up at each use: the settlement watchdog may plug in after us.
            release_floor=lambda: _call_or_none(getattr(daemon, "release_floor", None)),
            settlement_hook=lambda msg, payload, redelivered=False: _call_or_none(
                getattr(daemon, "settlement_hook", None), msg, payload, redelivered),
            settlements_hook=lambda items, redelivered=False: _call_or_none(
                getattr(daemon, "settlements_hook", None), items, redelivered),
            near_full=float(sync_cfg.get("near_full", 0.8)),
            status_file=status_file_path(config["path"], sync_cfg),
            status_interval_s=float(sync_cfg.get("status_interval_s", 1.0)),
            stall_after_s=float(sync_cfg.get("stall_after_s", 120)))
        self.daemon = daemon
        for alert in self._early_alerts:
            self.link.publish_alert(alert)
        daemon.sync_link = self.link
        # Every alert the daemon raises also goes up on the alerts topic.
        daemon.alert_hook = self._alert

    def _alert(self, kind, severity, detail):
        try:
            self._inner_alert(kind, severity, detail)
        finally:
            state = detail.get("state", "firing") if isinstance(detail, dict) else "firing"
            if self.link is not None:
                self.link.publish_alert({"kind": kind, "severity": severity, "state": state,
                                         "detail": detail})
            else:   # raised while the link is being built: it has nothing queued yet
                self._early_alerts.append({"kind": kind, "severity": severity, "state": state,
                                           "detail": detail})

    def start(self):
        self.link.start()

    def stop(self):
        self.link.stop()

    def alive(self):
        return self.link.alive()


def sync_plugin(daemon):
    """PLUGINS factory: MQTT sync if agent.toml has [mqtt] (or a legacy mqtt.toml exists)."""
    cfg = sync_settings(daemon.config)
    if cfg is None:
        return InactivePlugin()
    return SyncPlugin(daemon, cfg)


class DamagedSyncPlugin(SyncPlugin):
    """On a journal that refuses to open: the degraded link (agent/damaged_link.py)
    carries status and alerts, so the backend hears of the damage at once."""

    def __init__(self, daemon, cfg):       # SyncPlugin's alert hook, start, stop, alive
        from daozhang.agent.damaged_link import DamagedJournalLink
        self._early_alerts = []
        self._inner_alert = daemon.alert_hook
        self.link = DamagedJournalLink(daemon.config["device_id"], cfg["mqtt"], log=daemon.log)
        self.daemon = daemon
        daemon.sync_link = self.link
        daemon.alert_hook = self._alert


def damaged_sync_plugin(daemon):
    """DAMAGED_PLUGINS factory: the degraded link if MQTT sync is configured."""
    cfg = sync_settings(daemon.config)
    if cfg is None:
        return InactivePlugin()
    return DamagedSyncPlugin(daemon, cfg)


def install(daemon_module):
    """Called by agent/daemon.py: the plugin, and its degraded form for a damaged journal."""
    if sync_plugin not in daemon_module.PLUGINS:
        daemon_module.PLUGINS.append(sync_plugin)
    if damaged_sync_plugin not in daemon_module.DAMAGED_PLUGINS:
        daemon_module.DAMAGED_PLUGINS.append(damaged_sync_plugin)
