"""`daozhang backend ...`: the reference backend and its operator's commands."""

from daozhang.cli._lazy import lazy_group

backend = lazy_group("backend", "Run the reference backend; devices, settlements, stats.", {
    "run": ("daozhang.cli.backend_run:run", "Run a backend worker (MQTT shared subscription)."),
    "device": ("daozhang.cli.backend_device:device", "Register devices and their public keys."),
    "stats": ("daozhang.cli.backend_stats:stats", "Counts of devices, records, receipts, alerts, findings."),
    "receipts": ("daozhang.cli.backend_stats:receipts", "List a device's stored receipts."),
    "alerts": ("daozhang.cli.backend_alerts:alerts", "Alerts collected from devices."),
    "settle": ("daozhang.cli.backend_settle:settle", "Ingest an acquirer settlement file; send settlement acks."),
    "lost": ("daozhang.cli.backend_lost:lost", "Stored records a device's journal no longer holds (after salvage)."),
})
