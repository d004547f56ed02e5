"""scripts/check_architecture.py: each rule fires on a small synthetic tree,
a clean tree passes, and (once issue 13's refactors land) the real tree passes.

The synthetic trees copy the project's shape: pyproject.toml maps
`daozhang.agent` to agent/ and so on, so the checker resolves imports the
way it does on the real tree."""

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "check_architecture.py")

PYPROJECT = """\
[tool.setuptools]
package-dir = {"daozhang" = "daozhang", "daozhang.agent" = "agent", "daozhang.agent.core" = "agent/core", \
"daozhang.backend" = "backend", "daozhang.host_tools" = "host_tools", "daozhang.fleet" = "fleet", \
"daozhang.settlement_files" = "settlement_files"}
"""

# A layered tree that breaks no rule: the core imports the core (absolute and
# relative, at top level and inside a function), an adapter imports the core,
# the backend imports the core and the daozhang package, a test file is long.
CLEAN = {
    "pyproject.toml": PYPROJECT,
    "daozhang/__init__.py": "__version__ = '1'\n",
    "agent/__init__.py": "",
    "agent/core/__init__.py": "",
    "agent/core/cbor.py": "import struct\n",
    "agent/core/record.py": "from . import cbor\n\ndef f():\n    from daozhang.agent.core import cbor\n",
    "agent/daemon.py": "import os\nfrom daozhang.agent.core import record\n",
    "backend/__init__.py": "",
    "backend/store.py": "from daozhang import __version__\nfrom daozhang.agent.core.record import f\n",
    "host_tools/__init__.py": "",
    "host_tools/verify.py": "import daozhang.agent.core.cbor\n",
    "tests/test_long.py": "x = 1\n" * 600,
    "scripts/tool.py": "import daozhang.agent.daemon\n",
}


def load_checker():
    spec = importlib.util.spec_from_file_location("check_architecture", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checker = load_checker()


def tree(tmp_path, changes):
    files = dict(CLEAN)
    files.update(changes)
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path)


def findings(root):
    return [str(f) for f in checker.check(root)]


def test_a_clean_tree_passes(tmp_path, capsys):
    root = tree(tmp_path, {})
    assert findings(root) == []
    assert checker.main([root]) == 0
    assert capsys.readouterr().out == ""


def test_a_module_level_cycle_is_found(tmp_path):
    root = tree(tmp_path, {
        "backend/store.py": "from daozhang.backend import service\n",
        "backend/service.py": "x = 1\nimport daozhang.backend.store\n",
    })
    assert findings(root) == ["backend/service.py:2: cycle: import cycle backend/service.py -> "
                              "backend/store.py -> backend/service.py"]


def test_a_cycle_hidden_in_a_function_level_import_is_found(tmp_path):
    root = tree(tmp_path, {
        "host_tools/pki.py": "from daozhang.host_tools import pki_crl\n",
        "host_tools/pki_crl.py": "def load():\n    from daozhang.host_tools.pki import ca\n    return ca\n",
    })
    assert findings(root) == ["host_tools/pki.py:1: cycle: import cycle host_tools/pki.py -> "
                              "host_tools/pki_crl.py -> host_tools/pki.py"]


def test_a_star_import_counts(tmp_path):
    root = tree(tmp_path, {"agent/core/cbor.py": "from daozhang.agent.core.record import *\n"})
    assert findings(root) == ["agent/core/cbor.py:1: cycle: import cycle agent/core/cbor.py -> "
                              "agent/core/record.py -> agent/core/cbor.py"]


def test_a_relative_import_cycle_in_the_core_is_found(tmp_path):
    root = tree(tmp_path, {"agent/core/cbor.py": "from .record import f\n"})
    assert findings(root) == ["agent/core/cbor.py:1: cycle: import cycle agent/core/cbor.py -> "
                              "agent/core/record.py -> agent/core/cbor.py"]


def test_a_package_reexporting_its_modules_is_not_a_cycle(tmp_path):
    root = tree(tmp_path, {
        "settlement_files/__init__.py": "from .reader import read\n",
        "settlement_files/reader.py": "from daozhang.settlement_files.rows import Row\n\ndef read():\n    pass\n",
        "settlement_files/rows.py": "class Row:\n    pass\n",
    })
    assert findings(root) == []


def test_the_core_importing_an_adapter_is_found(tmp_path):
    root = tree(tmp_path, {"agent/core/record.py": "def f():\n    from daozhang.agent import signer\n",
                           "agent/signer.py": "import hashlib\n"})
    assert findings(root) == ["agent/core/record.py:2: core-outside: agent/core imports agent/signer.py: "
                              "the core imports only the core (move the code into agent/core or pass it in)"]


def test_the_core_importing_another_part_of_the_project_is_found(tmp_path):
    root = tree(tmp_path, {"agent/core/cbor.py": "import daozhang.backend.money\n", "backend/money.py": ""})
    out = findings(root)
    assert len(out) == 1 and out[0].startswith("agent/core/cbor.py:1: core-outside: agent/core imports "
                                               "backend/money.py")


@pytest.mark.parametrize("part", ["backend", "host_tools", "settlement_files"])
def test_a_backend_or_host_tool_importing_an_agent_adapter_is_found(tmp_path, part):
    root = tree(tmp_path, {part + "/__init__.py": "", part + "/uses.py": "from daozhang.agent.daemon import x\n"})
    assert findings(root) == ["%s/uses.py:1: adapter-import: %s imports the agent adapter agent/daemon.py "
                              "(share it through agent/core or a module of its own)" % (part, part)]


def test_a_long_file_outside_tests_is_found_and_a_long_test_is_not(tmp_path):
    root = tree(tmp_path, {"backend/store.py": "x = 1\n" * 501, "backend/ok.py": "x = 1\n" * 500})
    assert findings(root) == ["backend/store.py:501: too-long: 501 lines, at most 500 outside tests: "
                              "split it by concept"]


def test_the_script_prints_one_line_per_finding_and_exits_1(tmp_path):
    root = tree(tmp_path, {"agent/core/cbor.py": "from daozhang.agent import signer\n", "agent/signer.py": "",
                           "backend/__init__.py": "", "backend/sim.py": "import daozhang.agent.signer\n"})
    proc = subprocess.run([sys.executable, SCRIPT, root], capture_output=True, text=True)
    assert proc.returncode == 1
    assert [line.split(": ")[1] for line in proc.stdout.splitlines()] == ["core-outside", "adapter-import"]


def test_a_missing_root_is_a_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, SCRIPT, str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert proc.returncode == 2 and "is not a directory" in proc.stdout


def test_the_real_tree_keeps_the_rules():
    proc = subprocess.run([sys.executable, SCRIPT, ROOT], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_the_fleet_simulator_may_run_the_agents_own_adapters(tmp_path):
    """fleet/ simulates terminals with the agent's journal file and frame reader."""
    root = tree(tmp_path, {"fleet/__init__.py": "", "fleet/terminal.py": "from daozhang.agent.journal_file import x\n",
                           "agent/journal_file.py": "x = 1\n"})
    assert findings(root) == []
