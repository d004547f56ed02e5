"""The USB service port: its frames and the device side's session (docs/SPEC.md
§8).

No re-exports: import the module you need (daozhang.agent.core.service.<module>).
"""
