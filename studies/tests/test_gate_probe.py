"""studies/gate_probe.py's summary, on hand-made measurements whose answer is known: a case slowed
exactly when the canary is slowed loses its spread under the gate; a case whose spread has nothing
to do with the canary keeps it; the summary re-made from blocks.csv says the probe's seconds."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]


def blocks(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 200
    slow = rng.random(n) < 0.5  # half the measurements in a period 1.5x slower
    canary = np.where(slow, 750_000, 500_000)
    tied = np.where(slow, 1.5, 1.0) * 1_000_000  # slowed with the canary, else exactly steady
    free = np.exp(rng.normal(0, 0.1, n)) * 3_000_000  # spread of its own, canary or not
    rows = [
        (1, round(i * 0.5, 3), name, c, int(v), c)
        for i in range(n)
        for name, c, v in (("tied", canary[i], tied[i]), ("free", canary[i], free[i]))
    ]
    out = tmp_path / "probe"
    out.mkdir()
    pd.DataFrame(
        rows, columns=["cpu", "t_s", "case", "canary_before_ns", "case_ns", "canary_after_ns"]
    ).to_csv(out / "blocks.csv", index=False)
    return out


def test_the_gate_removes_the_spread_the_canary_sees_and_only_that(tmp_path):
    out = blocks(tmp_path)
    p = subprocess.run(
        [sys.executable, "studies/gate_probe.py", "--summary", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    text = (out / "summary.md").read_text()
    assert text.startswith("# Gate probe: 100 s on CPU 1")  # the first case's last turn at 99.5 s
    rows = {
        line.split(" | ")[0].strip("| "): line.split(" | ")
        for line in text.splitlines()
        if line.startswith("| tied") or line.startswith("| free")
    }
    tied, free = rows["tied"], rows["free"]
    # measurements; median µs: this draw has more fast than slow
    assert tied[1] == "200" and tied[2] == "1,000"
    assert float(tied[3]) > 0.99  # the case moves with the canary
    assert abs(float(tied[4]) - 0.203) < 0.01  # sd of log 1 vs log 1.5 at about half and half
    kept, sd = tied[5].split(", ")
    # gate 1.1: the fast half, steady
    assert 0.4 < int(kept.rstrip("%")) / 100 < 0.6 and float(sd) == 0.0
    free_kept, free_sd = free[5].split(", ")
    assert abs(float(free_sd) - float(free[4])) < 0.02  # a spread of its own stays
