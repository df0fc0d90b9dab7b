"""studies/gate_cost.py: the gate's steps, status and errors per case, the loss error over all a
fused row's gate steps for an unfused implementation (larger than over the first 5 at B32-H32:
why the gate compares only those), no gate for the control, one line and exit 2 on bad input."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def gate_cost(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "studies/gate_cost.py", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_the_table_of_a_fused_and_an_unfused_implementation():
    p = gate_cost("mlp", "numpy.loop,c.ref,null.noop", "32x32x2")
    assert p.returncode == 0, p.stderr
    rows = {
        c[0]: c
        for c in (
            [x.strip() for x in line.strip("|").split("|")]
            for line in p.stdout.splitlines()
            if line.startswith("| ") and "B32" in line
        )
    }
    numpy_row, c_row = rows["numpy.loop"], rows["c.ref"]
    assert numpy_row[1:4] == c_row[1:4] == ["B32-H32-L2", "64", "64"]  # K = 64: 64 gate steps
    assert numpy_row[6] == c_row[6] == "ok" and rows["null.noop"][6] == "no gate"
    loss5, loss64, update64 = float(numpy_row[7]), float(numpy_row[9]), float(numpy_row[10])
    # float32's loss error grows 100-fold
    assert loss5 < 1e-6 and 1e-5 < loss64 < 1e-4 and update64 < 1e-3
    # fused: its gate's update is after 64 steps
    assert float(c_row[8]) < 1e-3 and c_row[9] == c_row[10] == "nan"
    assert "numpy.loop: gate" in p.stdout.splitlines()[-1]


def test_bad_input_is_one_line_and_exit_2():
    for args in (("mlp", "nope"), ("mlp", "numpy.loop", "1x"), ("mlp",)):
        p = gate_cost(*args)
        assert p.returncode == 2 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1, (
            args,
            p.stderr,
        )
