"""studies/noise_summary.py: the committed chunks study's table regenerates unchanged from its runs,
and a study with a run still in progress (no finished_utc) gets its table, that run's minutes blank."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "studies" / "records" / "noise_study_chunks"


def summary(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "studies/noise_summary.py", str(root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_the_committed_chunks_table_regenerates_unchanged(tmp_path):
    copy = tmp_path / "noise_study_chunks"
    shutil.copytree(STUDY, copy)
    p = summary(copy)
    assert p.returncode == 0, p.stderr
    assert (copy / "summary.csv").read_text() == (STUDY / "summary.csv").read_text()
    table = pd.read_csv(copy / "summary.csv").set_index("variation")
    assert table.loc["chunks-1-a", "chunks"] == 1 and table.loc["chunks-5-a", "chunks"] == 5
    assert (
        table.loc[["chunks-5-a", "chunks-5-b", "chunks-5-c"], "median_round_sd"].max()
        < table.loc[["chunks-1-a", "chunks-1-b", "chunks-1-c"], "median_round_sd"].min()
    )


def test_a_run_still_in_progress_gets_no_minutes_and_no_traceback(tmp_path):
    copy = tmp_path / "study"
    shutil.copytree(STUDY / "chunks-1-a", copy / "chunks-1-a")
    shutil.copytree(STUDY / "chunks-5-a", copy / "chunks-5-a")
    meta = json.loads((copy / "chunks-5-a" / "run.json").read_text())
    meta["finished_utc"], meta["status"] = None, "running"
    (copy / "chunks-5-a" / "run.json").write_text(json.dumps(meta))
    p = summary(copy)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    table = pd.read_csv(copy / "summary.csv").set_index("variation")
    assert pd.isna(table.loc["chunks-5-a", "minutes"]) and table.loc["chunks-1-a", "minutes"] > 0
