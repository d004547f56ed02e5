"""`daozhang backend ...`: the reference backend and its operator's commands."""

from daozhang.cli._lazy import lazy_group

backend = lazy_group("backend", "Run the reference backend; devices, settlements, stats.", {
    "run": ("daozhang.cli.backend.run:run", "Run a backend worker (MQTT shared subscription)."),
    "device": ("daozhang.cli.backend.device:device", "Register devices and their public keys."),
    "stats": ("daozhang.cli.backend.stats:stats", "Counts of devices, records, receipts, alerts, findings."),
    "receipts": ("daozhang.cli.backend.stats:receipts", "List a device's stored receipts."),
    "alerts": ("daozhang.cli.backend.alerts:alerts", "Alerts collected from devices."),
    "settle": ("daozhang.cli.backend.settle:settle", "Ingest an acquirer settlement file; send settlement acks."),
    "lost": ("daozhang.cli.backend.lost:lost", "Stored records a device's journal no longer holds (after salvage)."),
})
