# A tiny pytest-like runner for MicroPython (tests/mp/run_portable.mjs).
# It imports each portable test module, calls every `test_*` function in
# name order, and prints one line per test ("PASS module::name", or "FAIL
# module::name" followed by the traceback) and a closing line
# "N passed, N failed".  The modules are the same files pytest collects on
# CPython: plain functions with asserts, no fixtures (tests/portable/kit.py
# stands in for pytest.raises).
import gc
import sys


def _tests_of(module):
    names = sorted(n for n in dir(module) if n.startswith("test_"))
    return [(n, getattr(module, n)) for n in names if callable(getattr(module, n))]


def run_modules(names):
    passed = failed = 0
    for name in names:
        try:
            module = __import__("portable." + name, None, None, ("x",))
        except Exception as exc:
            failed += 1
            print("FAIL %s (import)" % name)
            sys.print_exception(exc)
            continue
        for test_name, fn in _tests_of(module):
            gc.collect()
            try:
                fn()
            except Exception as exc:
                failed += 1
                print("FAIL %s::%s" % (name, test_name))
                sys.print_exception(exc)
            else:
                passed += 1
                print("PASS %s::%s" % (name, test_name))
    print("%d passed, %d failed" % (passed, failed))
    return failed
