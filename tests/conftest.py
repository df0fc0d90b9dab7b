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


# The files that take longest (`--durations`, 2 cores), first: under `-n 2 --dist loadfile`
# pytest-xdist hands whole files to the workers in collection order, so the long ones start at
# once and the short ones fill the end instead of one worker finishing a long file alone.
LONGEST_FIRST = (
    "test_gpt.py",
    "test_pipeline_nodes.py",
    "test_pipeline.py",
    "test_pipeline_frameworks.py",
    "test_cli.py",
    "test_reliability.py",
    "test_pytest_route.py",
)


def pytest_collection_modifyitems(config, items):
    first = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: first.get(item.path.name, len(first)))  # stable: files stay whole
