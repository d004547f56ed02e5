"""The settlement watchdog: each sale held against its acquirer settlement, fees,
the per-sale index, and the alert machine (docs/SPEC.md §7).

No re-exports: import the module you need (daozhang.agent.core.settlement.<module>).
"""
