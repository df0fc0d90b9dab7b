import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# every run the tests start times a 256^3 peak, not 2048^3 (runner.py)
os.environ.setdefault("BENCH_QUICK_PEAK", "1")


def shared_scope(fixture_name, config) -> str:
    """Scope of the fixtures that build a whole run: "module" normally; "function" under mutmut
    (which sets MUTANT_UNDER_TEST). mutmut credits a function only to the tests during which it
    runs, so work done once in a module fixture would count for the first test alone, and a
    mutant there would be tried against that one test instead of all that read its result."""
    return "function" if "MUTANT_UNDER_TEST" in os.environ else "module"
