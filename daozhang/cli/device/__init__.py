"""`daozhang device ...`: the technician's commands for one terminal."""

from daozhang.cli._lazy import lazy_group

device = lazy_group("device", "Provision a device; pull its journal over USB.", {
    "provision": ("daozhang.cli.device.provision:provision", "Create a device's key, config and journal."),
    "flash": ("daozhang.cli.device.flash:flash", "Write an OS image or MicroPython files to a terminal, verified."),
    "pull": ("daozhang.cli.device.pull:pull", "Pull a terminal's journal over its USB service port."),
    "rotate-key": ("daozhang.cli.device.rotate_key:rotate_key_command",
                   "Rotate a device's journal signing key (agent stopped)."),
})
