"""`bench pipeline` beyond PyTorch: JAX's GPipe (shard_map over host devices, and one process per
stage over jax.distributed), the C floor over MPI, each against the float64 gradients; the default
microbatch list; the report's ratios with CIs and its ties (across machines:
tests/test_pipeline_nodes.py)."""

import numpy as np
import pandas as pd
import pytest
from pipeline_procs import bench

from bench.pipeline.settings import FRAMEWORKS
from bench.schema import PIPELINE_COLUMNS

pytest.importorskip("torch")


@pytest.mark.slow
@pytest.mark.parametrize(
    "model, frameworks, ms",
    # the GPT at one M: each M is a new JAX compile of every stage (about 25 s)
    [("mlp", "jax,jax-dist,c", "2,4"), ("gpt", "jax,c", "2")],
)
def test_jax_and_c_pipelines_pass_the_gate(model, frameworks, ms, tmp_path):
    pytest.importorskip("jax")
    from bench.pipeline.cprog import unavailable_reason

    if "c" in frameworks and unavailable_reason():
        pytest.skip(unavailable_reason())
    out = tmp_path / "run"
    p = bench(
        "pipeline",
        "--model",
        model,
        "--framework",
        frameworks,
        "--microbatches",
        ms,
        "--rounds",
        "2",
        "--steps",
        "2",
        "--batch",
        "16" if model == "mlp" else "4",
        "--out",
        str(out),
    )
    assert p.returncode == 0, p.stderr[-3000:]
    df = pd.read_csv(out / "pipeline.csv")
    assert list(df.columns) == list(PIPELINE_COLUMNS)
    want = {(fw, name) for fw in frameworks.split(",") for name in FRAMEWORKS[fw]}
    assert set(zip(df["framework"], df["schedule"], strict=True)) == want
    assert (df["status"] == "ok").all(), df[["framework", "schedule", "status", "error"]]
    assert (
        df["grad_rel_err"] < 1e-5
    ).all()  # every pipeline's gradients are the float64 reference's
    pipes = df[df["schedule"] != "one-process"]
    assert (
        set(pipes["microbatches"]) == {int(m) for m in ms.split(",")}
        and (pipes["comm_s"] > 0).all()
        and pipes["ideal_s"].notna().all()
    )
    assert (df["stage_f_s"] > 0).all() and (df["stage_b_s"] > 0).all() and (df["rounds"] == 2).all()
    samples = pd.read_csv(out / "pipeline_samples.csv")
    assert set(samples["framework"]) == set(frameworks.split(",")) and len(samples) == 2 * 2 * len(
        df
    )
    report = (out / "report.md").read_text()
    assert "## Schedule cost per M" in report and "x [" in report  # ratios carry their CI


def test_default_schedules_run_what_they_can_at_the_given_m(tmp_path):
    """--microbatches 2 with every torch schedule: dualpipev (M >= 4 at P = 2) is left out of the
    cases with a note, the others are all there; named explicitly with that M, it is refused."""
    from bench.pipeline.settings import ProbeOptions, cases, new_settings

    s = new_settings(ProbeOptions(frameworks="torch", microbatches="2", batch=16), cores=2)
    assert "dualpipev needs at least 4 microbatches with 2 stages: M = 2 not run" in s.notes
    planned = {name for _, name, _ in cases(s)}
    assert planned == set(FRAMEWORKS["torch"]) - {"dualpipev"}
    assert {m for _, name, m in cases(s) if name != "one-process"} == {2}
    q = bench(
        "pipeline", "--schedules", "dualpipev", "--microbatches", "2", "--out", str(tmp_path / "q")
    )
    assert q.returncode == 2 and "dualpipev needs at least 4 microbatches" in q.stderr


def test_c_rows_are_unavailable_with_the_reason_when_mpi_is_missing(tmp_path, monkeypatch):
    from bench.pipeline import cprog
    from models import cbuild

    if cbuild.unavailable_reason():
        pytest.skip(cbuild.unavailable_reason())
    monkeypatch.setenv("BENCH_MPI_PREFIX", str(tmp_path))
    assert cprog.unavailable_reason() == (
        f"MPI not found under {tmp_path} (the mpich wheel: "
        "pip install -c constraints.txt -e '.[all]')"
    )


@pytest.mark.slow
def test_a_missing_mpi_gives_unavailable_c_rows_and_the_rest_runs(tmp_path):
    p = bench(
        "pipeline",
        "--framework",
        "torch,c",
        "--schedules",
        "gpipe",
        "--microbatches",
        "2",
        "--rounds",
        "1",
        "--steps",
        "1",
        "--batch",
        "16",
        "--out",
        str(tmp_path / "r"),
        "--no-report",
        env={"BENCH_MPI_PREFIX": str(tmp_path / "nompi")},
    )
    assert p.returncode == 0, p.stderr[-2000:]
    df = pd.read_csv(tmp_path / "r" / "pipeline.csv", keep_default_na=False).set_index("framework")
    assert df.loc["c", "status"] == "unavailable" and df.loc["c", "error"]
    assert df.loc["torch", "status"] == "ok"


def frame(rows):
    cols = ["framework", "schedule", "microbatches", "step_s", "ci_low_s", "ci_high_s"]
    return pd.DataFrame(rows, columns=cols).set_index(["framework", "schedule", "microbatches"])


def test_fastest_is_named_only_where_the_cis_separate():
    from bench.report.pipeline import fastest, ratio

    # geometric mean 1.0 within 1e-4
    spread = np.array([0.99, 1.01, 1.0, 0.995, 1.005, 0.98, 1.02, 1.0])
    a, b = 0.010 * spread, 0.013 * spread[::-1]  # b / a: 1.3 exactly in geometric means
    meds = {("c", "gpipe", 4): a, ("torch", "gpipe", 4): b, ("jax", "gpipe", 4): a * 1.002}
    at = frame(
        [("c", "gpipe", 4, 0.010, 0.0099, 0.0101), ("torch", "gpipe", 4, 0.013, 0.0129, 0.0131)]
    )
    assert fastest(at, meds).startswith("fastest c gpipe 10.00 ms")
    tied = frame(
        [
            ("c", "gpipe", 4, 0.010, 0.0099, 0.0101),
            ("jax", "gpipe", 4, 0.01002, 0.0099, 0.0101),
            ("torch", "gpipe", 4, 0.013, 0.0129, 0.0131),
        ]
    )
    text = fastest(tied, meds)
    assert "no single fastest" in text and "ties with jax gpipe" in text and "torch" not in text
    r = ratio(meds, ("c", "gpipe", 4), ("torch", "gpipe", 4))  # torch / c, known to be about 1.3
    value, lo, hi = (float(v) for v in r.replace("x [", " ").replace(",", " ").rstrip("]").split())
    assert value == 1.3 and lo < 1.3 < hi and 1.25 < lo and hi < 1.35
    assert ratio(None, ("c", "gpipe", 4), ("torch", "gpipe", 4)) == "ratio n/a"
    # rows with extra rounds (8 base of 12 here): the sd of the base 8 and their df (Stein's, as the rows' CIs)
    from bench.stats import welch_log

    wide = {
        ("c", "gpipe", 4): np.r_[a, 0.02, 0.005, 0.02, 0.005],
        ("torch", "gpipe", 4): np.r_[b, 0.013, 0.013, 0.013, 0.013],
    }
    _, lo, hi, _ = welch_log(*wide.values(), first_a=8, first_b=8)
    _, lo_all, hi_all, _ = welch_log(*wide.values())
    assert ratio(wide, *wide, first=8).endswith(f"[{lo:.2f}, {hi:.2f}]") and (lo, hi) != (
        lo_all,
        hi_all,
    )


def test_a_row_with_extra_rounds_takes_its_ci_from_the_base_rounds():
    """Stein's two-stage interval by hand: the centre over every round, the sd and the t's degrees of
    freedom from the base rounds only (the extra count was chosen from them)."""
    from scipy import stats as sps

    from bench.pipeline.rows import row
    from bench.pipeline.settings import PipelineSettings

    s = PipelineSettings(
        "mlp",
        {"batch": 128, "width": 256, "depth": 7},
        2,
        [2],
        ["gpipe"],
        3,
        2,
        frameworks=["c"],
        max_rounds=6,
    )
    medians_ms = [10.0, 10.5, 9.5, 14.0, 7.0, 12.0]  # base rounds 0-2 close; the extra ones wide
    results = [
        {
            "framework": "c",
            "schedule": "gpipe",
            "microbatches": 2,
            "round": r,
            "status": "ok",
            "error": "",
            "grad_rel_err": 1e-7 if r == 0 else None,
            "step_ns": [int(ms * 1e6)] * 2,
            "stage_f_s": {"0": 1e-3, "1": 1e-3},
            "stage_b_s": {"0": 2e-3, "1": 2e-3},
            "comm_s": 1e-5,
            "order": None,
        }
        for r, ms in reversed(list(enumerate(medians_ms)))
    ]  # in any order on disk
    out = row(s, "c", "gpipe", 2, results)
    logs = np.log(np.array(medians_ms) / 1e3)
    half = sps.t.ppf(0.975, 2) * logs[:3].std(ddof=1) / np.sqrt(6)
    assert out["rounds"] == 6 and out["status"] == "ok"
    assert out["step_s"] == pytest.approx(np.exp(logs.mean()))
    assert out["ci_low_s"] == pytest.approx(np.exp(logs.mean() - half))
    assert out["ci_high_s"] == pytest.approx(np.exp(logs.mean() + half))


@pytest.mark.slow
def test_extra_rounds_are_decided_once_and_only_for_wide_cases(tmp_path):
    import json

    from bench.pipeline.cprog import unavailable_reason

    if unavailable_reason():
        pytest.skip(unavailable_reason())
    out = tmp_path / "r"
    p = bench(
        "pipeline",
        "--framework",
        "c",
        "--schedules",
        "gpipe,1f1b",
        "--microbatches",
        "2",
        "--rounds",
        "2",
        "--max-rounds",
        "4",
        "--steps",
        "2",
        "--batch",
        "16",
        "--out",
        str(out),
        "--no-report",
    )
    assert p.returncode == 0, p.stderr[-2000:]
    extra = json.loads((out / "run.json").read_text())["extra_rounds"]
    df = pd.read_csv(out / "pipeline.csv")
    for r in df.itertuples():
        want = extra.get(f"c|{r.schedule}|{r.microbatches}", 2)
        assert 2 <= want <= 4 and r.rounds == want


def test_an_mpiexec_that_cannot_start_makes_the_c_rows_unavailable(tmp_path, monkeypatch):
    from bench.pipeline import cprog
    from models import cbuild

    if cbuild.unavailable_reason():
        pytest.skip(cbuild.unavailable_reason())
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "mpi.h").write_text("")
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "mpiexec"
    fake.write_text("#!/bin/sh\nexit 7\n")
    fake.chmod(0o755)
    monkeypatch.setenv("BENCH_MPI_PREFIX", str(tmp_path))
    cprog.launch_problem.cache_clear()
    try:
        assert cprog.unavailable_reason() == f"{fake} cannot start a program here (exit 7)"
    finally:
        cprog.launch_problem.cache_clear()


def test_the_launch_probe_tries_again_before_it_calls_mpiexec_unusable(tmp_path, monkeypatch):
    """Hydra's mpiexec died of SIGPIPE (exit -13) in 1 of 3 probes under load on the 2-core VM, and
    the probe's answer holds for the whole run: every C row `unavailable`. One good try is enough."""
    from bench.pipeline import cprog

    calls = []

    def flaky(args, timeout_s=30.0):
        calls.append(args)
        return (-13 if len(calls) < cprog.LAUNCH_TRIES else 0), ""

    monkeypatch.setattr("bench.supervisor.query", flaky)
    cprog.launch_problem.cache_clear()
    try:
        assert cprog.launch_problem() == "" and len(calls) == cprog.LAUNCH_TRIES
        calls.clear()
        monkeypatch.setattr(
            "bench.supervisor.query", lambda args, timeout_s=30.0: calls.append(args) or (-13, "")
        )
        cprog.launch_problem.cache_clear()
        assert cprog.launch_problem().endswith("cannot start a program here (exit -13)")
        assert len(calls) == cprog.LAUNCH_TRIES
    finally:
        cprog.launch_problem.cache_clear()
