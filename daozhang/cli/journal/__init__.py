"""`daozhang journal ...`: create, append to, verify, inspect and export a journal."""

from daozhang.cli._lazy import lazy_group

journal = lazy_group("journal", "Create, append to, verify and export a journal.", {
    "init": ("daozhang.cli.journal.write:init", "Create a preallocated journal file."),
    "append": ("daozhang.cli.journal.write:append", "Append transactions given as JSON lines."),
    "verify": ("daozhang.cli.journal.read:verify", "Check framing, CRC, chain, signatures, order; list every finding."),
    "head": ("daozhang.cli.journal.read:head", "Write the latest signed checkpoint as an anchor file."),
    "show": ("daozhang.cli.journal.read:show", "Device, sequence range, checkpoints, backlog, fill level."),
    "export": ("daozhang.cli.journal.read:export", "Export records as JSON lines or CSV."),
    "salvage": ("daozhang.cli.journal.salvage:salvage", "Set damaged records aside (signed) so the journal can go on."),
})
