"""Faults injected into real runs: each case gets its own status, the others stay ok."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bench.commands import main
from bench.schema import FAILED_STATUSES, SCHEMA_VERSION, STATUSES

ROOT = Path(__file__).resolve().parent.parent
FAULTS = {
    "fault.segfault": ("crashed", "SIGSEGV; stderr: Fatal Python error: Segmentation fault | File"),
    "fault.hang": ("timeout", "no answer within 5 s"),
    "fault.nan": ("diverged", "non-finite loss"),
    "fault.wrong": ("mismatch", "update rel. error"),
    "fault.noimport": ("unavailable", "ImportError: simulated"),
}


def bench(*args, env_extra=None, **kw):
    env = {**os.environ, "BENCH_EXTRA_IMPLS": "tests.faulty", **(env_extra or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def read(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "results.csv", keep_default_na=False, na_values=[""])


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("faults") / "run"
    impls = ",".join(["numpy.loop", *FAULTS, "null.noop"])
    p = bench(
        "run",
        "--impl",
        impls,
        "--sizes",
        "1x1x1,4x8x2",
        "--rounds",
        "2",
        "--budget",
        "0.02",
        "--min-samples",
        "5",
        "--case-timeout",
        "5",
        "--out",
        str(out),
        "--no-report",
    )
    _, err = p.communicate(timeout=300)
    return out, p.returncode, err


@pytest.mark.slow
def test_run_with_faults_finishes_with_exit_1(fault_run):
    out, code, err = fault_run
    assert code == 1, err[-2000:]
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("impl", list(FAULTS))
def test_each_fault_gets_its_status_and_a_readable_reason(fault_run, impl):
    df = read(fault_run[0])
    rows = df[df["impl"] == impl]
    status, words = FAULTS[impl]
    assert len(rows) == 2
    assert (rows["status"] == status).all(), rows[["size", "status", "error"]]
    for e in rows["error"]:
        assert words in e and "\n" not in e
    assert (rows["n_samples"] == 0).all()  # never timed


def test_real_cases_stay_ok_around_the_faults(fault_run):
    df = read(fault_run[0])
    ok = df[df["impl"].isin(["numpy.loop", "null.noop"])]
    assert (ok["status"] == "ok").all() and (ok["rounds"] == 2).all()


@pytest.mark.parametrize("status", list(STATUSES))
def test_exit_code_is_1_exactly_for_the_failed_statuses(status):
    """A run whose only non-ok row has this status exits 1 for a failure, 0 for ok/unavailable."""
    from bench.sweep.runner import exit_status

    want = 1 if status in ("mismatch", "diverged", "error", "crashed", "timeout") else 0
    if status == "interrupted":
        want = 0  # an interrupted run exits 130 before exit_status is asked
    assert exit_status([{"status": "ok"}, {"status": status}]) == want
    assert (status in FAILED_STATUSES) == (want == 1)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_keeps_results_and_resume_completes(tmp_path, sig):
    out = tmp_path / "run"
    args = [
        "run",
        "--impl",
        "numpy.loop,null.noop",
        "--sizes",
        "1x1x1,2x2x1,3x3x1",
        "--rounds",
        "8",  # the signal comes once 3 cases have 2 rounds: 6 left to interrupt
        "--budget",
        "0.02",
        "--min-samples",
        "5",
        "--out",
        str(out),
        "--no-report",
    ]
    p = bench(*args)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until some cases are on disk
        if (out / "results.csv").is_file() and (read(out)["rounds"] >= 2).sum() >= 3:
            break
        time.sleep(0.2)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err[-2000:]
    assert "--resume" in err and "Traceback" not in err
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "interrupted"
    df = read(out)
    assert len(df) == 6 and set(df["status"]) <= {"ok", "interrupted"}
    assert (df["rounds"] < 8).any()
    samples = pd.read_csv(out / "samples.csv")
    counts = samples.groupby(["impl", "size"]).size()
    for _, r in df[df["n_samples"] > 0].iterrows():
        assert counts[(r["impl"], r["size"])] == r["n_samples"]  # no half-written sample
    measured = int(df["n_samples"].sum())

    p = bench("run", "--resume", str(out), "--no-report")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-2000:]
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "complete" and len(meta["resumed"]) == 1
    df = read(out)
    assert (df["status"] == "ok").all() and (df["rounds"] == 8).all()
    assert df["n_samples"].sum() > measured
    samples = pd.read_csv(out / "samples.csv.gz")
    assert samples.groupby(["impl", "size"])["round"].nunique().eq(8).all()
    assert not samples.duplicated(["impl", "size", "round", "i"]).any()  # no round measured twice


def test_resume_refuses_complete_runs_non_runs_and_extra_settings(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    run = tmp_path / "done"
    run.mkdir()
    meta = {
        "schema_version": SCHEMA_VERSION,
        "status": "complete",
        "run_id": "done",
        "settings": {},
        "machine": {},
    }
    (run / "run.json").write_text(json.dumps(meta))
    assert main(["run", "--resume", str(run)]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    (run / "run.json").write_text(
        json.dumps({**meta, "schema_version": 99, "status": "interrupted"})
    )
    assert main(["run", "--resume", str(run)]) == 2
    assert "schema version 99, from a newer harness" in capsys.readouterr().err
    assert main(["run", "--resume", str(run), "--threads", "1"]) == 2
    assert "do not combine" in capsys.readouterr().err


def test_absurd_size_is_refused_with_the_memory_estimate(capsys, tmp_path):
    assert main(["run", "--sizes", "16384x16384x200", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "GiB available" in err
    assert not (tmp_path / "x").exists()


def test_unwritable_out_is_refused(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")  # refused even for root, unlike a read-only directory
    assert main(["run", "--sizes", "1x1x1", "--out", str(blocker / "run")]) == 2
    assert "not a writable directory" in capsys.readouterr().err
