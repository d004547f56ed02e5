"""The USB service port inside the agent daemon (docs/SPEC.md §8; built by
agent/assemble.py).

Started when agent.toml's [service_port] device names a device (provision
copies it from the board: /dev/ttyGS0 on the Pi's USB gadget port).  The
port opens the journal read-only and answers a technician's laptop; this
plugin gives it the agent's live view through the callbacks:

- info:   device_pubkey (32 raw bytes), journal_range [first_seq, last_seq],
          last_checkpoint {seq, wall_ms, acked, released}, backlog, alerts
          (count of pending or firing alerts);
- alerts: every current alert record (the settlement plugin's current_alerts);
- health: journal stats, sync link health, clock trust.

A device that is absent (no cable, no gadget driver) is not an error: the
port retries opening it every few seconds and the agent runs on.
"""

from daozhang.agent.core.journal import record
from daozhang.agent.core.service.service_session import cbor_safe
from daozhang.agent.service_port import ServicePort
from daozhang.signing import load_signer


class ServicePortPlugin:
    def __init__(self, device, config, journal, log, current_alerts, clock_trusted, link_health=None):
        """`current_alerts()` -> alert records; `clock_trusted()` -> bool;
        `link_health()` -> the sync link's health map (None: no sync)."""
        self.device = device
        self.key_path = config["key"]
        self.journal = journal
        self.log = log
        self.current_alerts = current_alerts
        self.clock_trusted = clock_trusted
        self.link_health = link_health
        self.port = ServicePort(device, config["journal"]["path"], config["device_id"],
                                config["technician_pubkeys"],
                                callbacks={"info": self.info, "alerts": self.alerts,
                                           "health": self.health},
                                reopen_delay=3.0)

    # -- callbacks (called on the port's thread) ---------------------------------

    def _device_pubkey(self):
        try:
            return load_signer(self.key_path).public_bytes
        except Exception:
            return None

    def _last_checkpoint(self, stats):
        start = max(stats["first_seq"], stats["next_seq"] - 512)
        last = None
        for rec in self.journal.records(from_seq=start):
            if rec.type == record.TYPE_CHECKPOINT:
                last = rec
        if last is None:
            return None
        return {"seq": last.seq, "wall_ms": last.wall_ms, "acked": last.payload.get("acked"),
                "released": last.payload.get("released")}

    def info(self):
        stats = self.journal.stats()
        out = {"journal_range": [stats["first_seq"], stats["next_seq"] - 1],
               "last_checkpoint": self._last_checkpoint(stats),
               "backlog": stats["next_seq"] - stats["acked"],
               "alerts": len([a for a in self.current_alerts()
                              if a.get("state") in ("pending", "firing")])}
        pub = self._device_pubkey()
        if pub is not None:
            out["device_pubkey"] = pub
        return cbor_safe(out)

    def alerts(self):
        return cbor_safe(self.current_alerts())

    def health(self):
        out = {"journal": self.journal.stats(), "clock_trusted": bool(self.clock_trusted())}
        if self.link_health is not None:
            out["sync"] = self.link_health()
        return cbor_safe(out)

    # -- the daemon's part ------------------------------------------------------------

    def start(self):
        self.log("service_port_start", device=self.device)
        self.port.start()

    def stop(self):
        self.port.stop()

    def alive(self):
        return True   # the port reopens by itself; its faults never stop the agent
