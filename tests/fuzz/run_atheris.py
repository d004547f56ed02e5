"""Run one fuzz target under atheris (libFuzzer, coverage-guided).

    python tests/fuzz/run_atheris.py TARGET CORPUS_DIR [libFuzzer flags...]

e.g. `-runs=20000 -seed=1 -max_len=4096` for the bounded CI run
(test_fuzz.py), or `-max_total_time=600` for a longer hunt.  The project's
modules are instrumented for coverage; a crash (an invariant of
targets.py broken) exits non-zero with the input saved as crash-*.
"""

import os
import sys

import atheris

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

with atheris.instrument_imports(include=["daozhang"]):
    import targets  # noqa: E402


def main():
    name, corpus = sys.argv[1], sys.argv[2]
    target = targets.TARGETS[name]
    os.makedirs(corpus, exist_ok=True)
    if not os.listdir(corpus):
        for i, seed in enumerate(targets.seeds()[name]):
            with open(os.path.join(corpus, "seed-%d" % i), "wb") as f:
                f.write(seed)
    atheris.Setup([sys.argv[0], corpus] + sys.argv[3:], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
