"""The studies' scripts that make committed records refuse an uncommitted tree (exit 2, one line
naming the script) before they run anything; the host check appends its rows under one header."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ["noise_study", "noise_study_budget", "noise_study_gpt", "noise_study_chunks"]


def repo(tmp_path: Path) -> Path:
    """A git repository holding the scripts, committed, and a Python that only says it ran."""
    r = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", r / "scripts")
    shutil.copytree(ROOT / "studies", r / "studies", ignore=shutil.ignore_patterns("records"))
    (r / "fake_python").write_text('#!/bin/sh\necho "ran: $*" >> "$(dirname "$0")/ran.log"\n')
    (r / "fake_python").chmod(0o755)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(r)], check=True)
    subprocess.run([*git, "-C", str(r), "add", "."], check=True)
    subprocess.run([*git, "-C", str(r), "commit", "-qm", "x"], check=True)
    return r


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_study_that_makes_committed_records_refuses_a_dirty_tree(tmp_path, name):
    r = repo(tmp_path)
    (r / "scripts" / "common.sh").write_text(
        (r / "scripts" / "common.sh").read_text() + "# changed\n"
    )
    p = subprocess.run(
        ["bash", str(r / "studies" / f"{name}.sh"), str(tmp_path / "out")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHON": str(r / "fake_python")},
    )
    assert p.returncode == 2, p.stderr
    assert p.stderr == (
        f"{name}: the tree has uncommitted changes; commit first (a committed run comes from a "
        "clean tree)\n"
    )
    assert not (r / "ran.log").exists()


@pytest.mark.slow
def test_host_check_appends_its_rows_to_a_log_under_one_header(tmp_path):
    import sys

    import pandas as pd

    log = tmp_path / "checks.csv"
    log.write_text("utc,cpu_model,impl,size,ratio_b_a,detectable\nearlier,cpu,c.ref,B1,1.0,0.05\n")
    p = subprocess.run(
        ["bash", "studies/host_check.sh", "studies/records/20261129T192711Z_vm", str(log)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
    )
    assert p.returncode == 0, p.stderr
    assert "B/A" in p.stdout
    got = pd.read_csv(log)
    assert list(got.columns) == ["utc", "cpu_model", "impl", "size", "ratio_b_a", "detectable"]
    assert len(got) == 1 + 4 and got["utc"].iloc[0] == "earlier"  # appended, one header
    new = got.iloc[1:]
    assert set(new["impl"]) == {"c.ref", "numpy.loop"} and new["size"].nunique() == 2
    assert (new["ratio_b_a"] > 0).all() and (new["detectable"] > 0).all()
    assert new["utc"].str.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
