"""Bounded fuzzing of every parser of outside bytes (targets.py states the
invariants: only our own errors, no card number in any output).

Two drivers over the same targets:
- atheris (coverage-guided libFuzzer), a fixed number of runs with a fixed
  seed per target, each in its own process (libFuzzer exits when done);
- hypothesis, random and seed-derived bytes, in this process.
Longer hunts: `python tests/fuzz/run_atheris.py TARGET DIR -max_total_time=600`.
"""

import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import targets  # noqa: E402

# Runs per target: a few seconds each on one core of a loaded CI machine.
RUNS = {"intake_json": 8000, "intake_frames": 8000, "strict_json": 5000, "journal_record": 50000,
        "journal_superblock": 8000, "service_port": 2000, "service_frames": 8000,
        "backend_receipts": 1500, "backend_alert": 2000, "agent_down": 8000, "settlement_csv": 8000}
SEED = 12
# Targets known to fail, with why (none: settlement input is masked in every
# column by settlement_files/card_mask.py through card_data's rule).
PENDING = {}

_ids = sorted(targets.TARGETS)
_marks = [pytest.param(n, marks=pytest.mark.xfail(reason=PENDING[n], strict=False))
          if n in PENDING else n for n in _ids]


@pytest.mark.parametrize("name", _marks)
def test_atheris_bounded_run(name, tmp_path):
    pytest.importorskip("atheris")
    cmd = [sys.executable, os.path.join(HERE, "run_atheris.py"), name, str(tmp_path / "corpus"),
           "-runs=%d" % RUNS[name], "-seed=%d" % SEED, "-max_len=4096",
           "-artifact_prefix=%s/" % tmp_path, "-print_final_stats=1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    crashes = [f for f in os.listdir(tmp_path) if f.startswith(("crash-", "timeout-", "oom-"))]
    assert done.returncode == 0 and not crashes, done.stderr[-4000:]
    assert "Done %d runs" % RUNS[name] in done.stderr


def _seed_mutations(name):
    seeds = targets.seeds()[name]
    return st.sampled_from(seeds).flatmap(lambda s: st.tuples(
        st.just(s), st.integers(0, max(0, len(s))), st.integers(0, 8), st.binary(max_size=8)
    ).map(lambda t: t[0][:t[1]] + t[3] + t[0][t[1] + t[2]:]))


def _hypothesis_test(name):
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.binary(max_size=512), _seed_mutations(name)))
    def run(data):
        targets.TARGETS[name](data)
    for seed in targets.seeds()[name]:
        run = example(seed)(run)
    return run


@pytest.mark.parametrize("name", _marks)
def test_hypothesis_fuzz(name):
    _hypothesis_test(name)()
