"""The daemon's glibc malloc settings (agent/malloc_arenas.py): made at
start unless the environment already holds them, and the shipped units
set the same values."""

import os
import re
import subprocess
import sys

from daozhang.agent import malloc_arenas

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = [variable for _, _, variable in malloc_arenas.SETTINGS]


def _settings_made(env):
    code = "from daozhang.agent.malloc_arenas import cap_malloc_arenas; print(cap_malloc_arenas())"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    clean.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True,
                         check=True).stdout
    return eval(out)


def test_every_setting_is_made_unless_the_operator_set_it():
    assert _settings_made({}) == NAMES
    assert _settings_made({"MALLOC_MMAP_THRESHOLD_": "65536"}) == [
        n for n in NAMES if n != "MALLOC_MMAP_THRESHOLD_"]


def test_the_shipped_units_set_the_same_values():
    want = {variable: str(value) for _, value, variable in malloc_arenas.SETTINGS}
    for path in ("examples/systemd/daozhang-agent.service", "host_tools/flash/firstboot.py"):
        with open(os.path.join(REPO, path)) as f:
            line = [l for l in f if l.startswith("Environment=MALLOC_")][0]
        assert dict(re.findall(r"(MALLOC_\w+)=(\d+)", line)) == want, path
