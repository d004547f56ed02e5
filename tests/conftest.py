import os
import sys

# Shared test helpers live in tests/dztest (a package, imported as `dztest`).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pytest  # noqa: E402


@pytest.fixture
def run_main(capsys):
    """Run the real `daozhang` entry point, its error translation included:
    run(*args) -> (exit code, stdout + stderr)."""
    from daozhang.cli.main import main

    def run(*args):
        with pytest.raises(SystemExit) as info:
            main(list(args))
        out = capsys.readouterr()
        return info.value.code, out.out + out.err
    return run
