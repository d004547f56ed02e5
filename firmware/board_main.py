# The board's /main.py: MicroPython runs it after boot.py; it starts the terminal.
# `daozhang device flash` copies this file as /main.py (host_tools/flash/mcu.py);
# a frozen build freezes it as `main` (firmware/stage.py, manifest.py).
from daozhang.firmware.main import main

main()
