"""The scripts that make committed runs refuse an uncommitted tree (exit 2, one line naming the
script) before they run anything, since a committed run comes from a clean tree; on a clean tree
they get past that check."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["reference_runs"]


def repo(tmp_path: Path) -> Path:
    """A git repository holding the scripts, committed, and a Python that only says it ran."""
    r = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", r / "scripts")
    (r / "results").mkdir()
    shutil.copy(ROOT / "results" / "reference.toml", r / "results")
    (r / "fake_python").write_text(
        '#!/bin/sh\necho "ran: $*" >> "$(dirname "$0")/ran.log"\n'
        'while [ $# -gt 0 ]; do [ "$1" = --out ] && mkdir -p "$2"; shift; done\n'
    )
    (r / "fake_python").chmod(0o755)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(r)], check=True)
    subprocess.run([*git, "-C", str(r), "add", "."], check=True)
    subprocess.run([*git, "-C", str(r), "commit", "-qm", "x"], check=True)
    return r


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_script_that_makes_committed_runs_refuses_a_dirty_tree(tmp_path, name):
    r = repo(tmp_path)
    (r / "scripts" / "common.sh").write_text(
        (r / "scripts" / "common.sh").read_text() + "# changed\n"
    )
    p = subprocess.run(
        ["bash", str(r / "scripts" / f"{name}.sh"), str(tmp_path / "out")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHON": str(r / "fake_python")},
    )
    assert p.returncode == 2, p.stderr
    assert (
        p.stderr
        == f"{name}: the tree has uncommitted changes; commit first (a committed run comes from a clean tree)\n"
    )
    assert not (r / "ran.log").exists()


def test_on_a_clean_tree_the_script_runs_from_the_repository_root(tmp_path):
    r = repo(tmp_path)
    p = subprocess.run(
        ["bash", str(r / "scripts" / "reference_runs.sh")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHON": str(r / "fake_python"), "SKIP_PIPELINES": "1"},
    )
    assert p.returncode == 0, p.stderr
    ran = (r / "ran.log").read_text().splitlines()
    assert ran[0].startswith(
        "ran: -m bench run --native-kernels --rounds 1 --max-rounds 1 --no-report --out /"
    )
    assert ran[1].startswith(
        "ran: -m bench run --model gpt --native-kernels --rounds 1 --max-rounds 1 --no-report"
    )
    assert not Path(ran[0].split("--out ")[1]).parent.exists()  # the warm-up runs are not kept
    assert ran[2].startswith("ran: -m bench run --native-kernels --out results/")
    assert any(line.startswith("ran: -m bench compare results/") for line in ran)
    from bench import reference

    mlp = ran[2].split("--out ")[1]
    named = reference.runs(r / "results" / "reference.toml")
    assert named["mlp"] == mlp and named["pipeline_mlp"] == reference.runs()["pipeline_mlp"]
    subprocess.run(["git", "-C", str(r), "checkout", "-q", "--", "results"], check=True)
    p = subprocess.run(
        ["bash", str(r / "scripts" / "reference_runs.sh")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHON": str(r / "fake_python"),
            "SKIP_PIPELINES": "1",
            "SKIP_WARMUP": "1",
        },
    )
    assert (
        (r / "ran.log")
        .read_text()
        .splitlines()[len(ran)]
        .startswith("ran: -m bench run --native-kernels --out results/")
    )
