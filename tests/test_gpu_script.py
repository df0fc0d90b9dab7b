"""scripts/gpu_verify.sh in its dry mode (DRY=1: the CPU, tiny sizes): every step runs, each
run directory and the summary come out, and a failure would show in the exit code."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_verify_script_dry_run(tmp_path):
    env = {**os.environ, "DRY": "1", "PYTHON": sys.executable}
    p = subprocess.run(
        ["bash", "scripts/gpu_verify.sh", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "== CUDA equivalence tests" in p.stdout and "== summary" in p.stdout
    for model in ("mlp", "gpt"):
        df = pd.read_csv(tmp_path / f"{model}_cpu" / "results.csv")
        assert (df["status"] == "ok").all()
        assert f"{model}_cpu" in p.stdout.split("== summary")[1]
    # no GPU here: the CUDA tests skip
    assert "skipped" in (tmp_path / "cuda_tests.log").read_text()
