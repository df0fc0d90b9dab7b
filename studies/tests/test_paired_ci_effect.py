"""studies/paired_ci_effect.py on the synthetic run of tests/fixture_run.py."""

import re

from fixture_run import TRUTH, WIDTH, make_run


def test_the_paired_ci_effect_script_reads_a_run_and_says_how_much_pairing_narrowed(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    run = make_run(tmp_path / "run")
    p = subprocess.run(
        [sys.executable, str(root / "studies" / "paired_ci_effect.py"), str(run)],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )
    assert p.returncode == 0, p.stderr
    m = re.search(
        r"chunks 1; paired/unpaired CI width, median (\d\.\d\d) \((\d+) of (\d+) rows narrower\)",
        p.stdout,
    )
    assert m and 0.5 < float(m.group(1)) < 2 and 0 <= int(m.group(2)) <= int(m.group(3)), p.stdout
    # every row but the floor's, every size
    assert int(m.group(3)) == (len(TRUTH) - 1) * (len(WIDTH) + 3)
