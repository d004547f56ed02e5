"""The journal: the ring of segments on block storage, its record frames and
layouts, checkpoints, and recovery after a crash (docs/SPEC.md §3).

No re-exports: import the module you need (daozhang.agent.core.journal.<module>).
"""
