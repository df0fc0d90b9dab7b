"""studies/round_shift.py on the synthetic run of tests/fixture_run.py: its processes drift
independently (no shared shift), then the same run with a known shift planted in each round, which
the script must find at its size; a damaged run is one line and exit 2."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from fixture_run import PROCESS_SD, ROUNDS, make_run

ROOT = Path(__file__).resolve().parents[2]
SHIFTS = np.array([0.2, -0.2, 0.1, -0.1])  # log shift of every process of round 0, 1, 2, 3
assert len(SHIFTS) == ROUNDS


def table(*runs: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "studies/round_shift.py", *map(str, runs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def cells(p: subprocess.CompletedProcess) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in p.stdout.splitlines()[2:]]


def test_a_planted_round_shift_is_found_at_its_size_and_none_without_it(tmp_path):
    plain = make_run(tmp_path / "plain", noise=0.002)
    shifted = make_run(tmp_path / "shifted", noise=0.002)
    rounds = pd.read_csv(shifted / "rounds.csv")
    rounds["median_s"] *= np.exp(SHIFTS[rounds["round"].to_numpy()])
    rounds.to_csv(shifted / "rounds.csv", index=False)
    p = table(plain, shifted)
    assert p.returncode == 0, p.stderr
    (a, b) = cells(p)
    rows = 8 * 4  # 8 sizes x 4 implementations: the control (null.noop) left out
    assert a[1:3] == b[1:3] == [str(rows), str(ROUNDS)]
    # independent drifts of sd PROCESS_SD: no shift
    assert float(a[4]) < 0.01 and int(a[5].rstrip("%")) < 10
    assert abs(float(a[3]) - PROCESS_SD) < 0.004
    assert abs(float(b[4]) - SHIFTS.std(ddof=1)) < 0.005  # 0.183
    # what is left: the processes' own
    assert int(b[5].rstrip("%")) > 95 and abs(float(b[6]) - PROCESS_SD) < 0.004


def test_a_damaged_run_is_one_line_and_exit_2(tmp_path):
    run = make_run(tmp_path / "run")
    (run / "rounds.csv").write_text("schema_version,impl\n5,x\n")
    p = table(run)
    assert p.returncode == 2 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1, (
        p.stderr
    )
    assert p.stderr.startswith(f"error: {run}")
    assert table().returncode == 2
