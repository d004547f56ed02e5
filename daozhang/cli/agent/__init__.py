"""`daozhang agent ...`: the terminal daemon and what it knows."""

from daozhang.cli._lazy import lazy_group

agent = lazy_group("agent", "Run the terminal agent; its status and alerts.", {
    "run": ("daozhang.cli.agent.run:run", "Run the agent daemon (systemd Type=notify)."),
    "status": ("daozhang.cli.agent.status:status", "Backlog, sync health and journal fill."),
    "alerts": ("daozhang.cli.agent.alerts:alerts", "Current alerts on this terminal."),
})
