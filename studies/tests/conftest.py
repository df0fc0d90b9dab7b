import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # fixture_run: a synthetic run
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("BENCH_QUICK_PEAK", "1")
