"""studies/replan.py replays a committed run's base rounds through the extra rounds' planner: its
replay of the run's own extra rounds must give the noisy rows the run's results.csv has (Stein's
interval follows from the base rounds and the counts), and a planner aiming at the threshold
itself must leave no more noisy rows than one aiming below it, within the same budget."""

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNS = ["studies/records/20261129T190734Z_vm", "studies/records/20261129T192711Z_vm"]


def replan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "studies/replan.py", *args], cwd=ROOT, capture_output=True, text=True
    )


@pytest.mark.parametrize("run", RUNS)
def test_the_replay_of_a_run_s_own_extra_rounds_gives_its_noisy_rows(run):
    if not (ROOT / run / "rounds.csv").is_file():
        pytest.skip(f"{run} is not in this checkout")
    p = replan(run, "0.05,32")
    assert p.returncode == 0, p.stderr
    res = pd.read_csv(ROOT / run / "results.csv")
    ok = res[(res["status"] == "ok") & (res["role"] != "control")]
    want = int(ok["noisy"].astype(str).eq("True").sum())
    own, new = (int(m) for m in re.findall(r"noisy rows (\d+) of", p.stdout))
    assert own == want and f"noisy in results.csv: {want}" in p.stdout
    assert new <= own


def test_replan_without_a_run_says_how_to_use_it():
    p = replan()
    assert p.returncode == 2 and "replan.py RUN_DIR" in p.stderr


def test_replan_on_a_directory_that_is_no_run_is_a_one_line_error(tmp_path):
    p = replan(str(tmp_path))
    assert (
        p.returncode == 2
        and p.stderr.count("\n") == 1
        and "not a finished run directory" in p.stderr
    )
