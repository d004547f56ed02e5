"""The intake: what a POS sends (frames, the transaction JSON and its rules) and
the receipt code it gets back (docs/SPEC.md §4-5).

No re-exports: import the module you need (daozhang.agent.core.intake.<module>).
"""
