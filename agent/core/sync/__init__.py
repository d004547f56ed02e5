"""Sync: the state machine that sends the journal to the backend and takes its
acks, the MQTT topics and payloads, and the down messages it carries
(settlement acks, deposit alerts) (docs/SPEC.md §6, 7.8, 7.10).

No re-exports: import the module you need (daozhang.agent.core.sync.<module>).
"""
