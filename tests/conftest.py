import os
import sys

# Shared test helpers live in tests/dztest (a package, imported as `dztest`).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
