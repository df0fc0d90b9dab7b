"""The CLI end to end, in subprocesses, on tiny sizes."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import frameworks
from bench.schema import RESULT_COLUMNS, ROUND_COLUMNS, SAMPLE_COLUMNS, SCHEMA_VERSION
from bench.sizes import parse_sizes
from models.mlp.model import LOSS_RTOL, UPDATE_RTOL
from models.registry import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
IMPLS = REGISTRY["mlp"]
# torch.cudagraphs: tests/test_devices.py
CPU_IMPLS = [n for n, i in IMPLS.items() if "cpu" in frameworks.devices(i)]


def bench(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    p = bench(
        "run",
        "--impl",
        ",".join(CPU_IMPLS),
        "--sizes",
        "1x1x1",  # one size: the compiled implementations cost most of this run, per size and round
        "--rounds",
        "2",
        "--budget",
        "0.02",
        "--min-samples",
        "5",
        "--out",
        str(out),
        "--no-report",
    )
    return out, p


@pytest.mark.slow
def test_run_writes_ok_row_per_impl_and_size(tiny_run):
    out, p = tiny_run
    assert p.returncode == 0, p.stderr[-2000:]
    df = pd.read_csv(out / "results.csv", keep_default_na=False, na_values=[""])
    assert list(df.columns) == list(RESULT_COLUMNS)
    assert (df["schema_version"] == SCHEMA_VERSION).all()
    assert len(df) == len(CPU_IMPLS)
    assert set(df["impl"]) == set(CPU_IMPLS)
    assert set(df["size"]) == {"B1-H1-L1"}  # several sizes, size-major: test_reliability
    assert (df["status"] == "ok").all(), df[["impl", "size", "status", "error"]]
    assert (df["rounds"] == 2).all() and (df["n_samples"] >= 10).all()
    assert (df["ci_low_s"] <= df["median_s"]).all() and (df["median_s"] <= df["ci_high_s"]).all()
    assert (df["min_s"] <= df["median_s"]).all() and (df["first_call_s"] > 0).all()
    gated = df[df["impl"] != "null.noop"]
    assert (gated["loss_rel_err"] < LOSS_RTOL).all() and (
        gated["update_rel_err"] < UPDATE_RTOL
    ).all()
    assert df.loc[df["impl"] == "null.noop", "loss_rel_err"].isna().all()
    ks = {s.label: s.steps_per_call() for s in parse_sizes("1x1x1")}
    fused = df["impl"].map(lambda n: IMPLS[n].fused)
    scan = df[fused]
    assert set(scan["impl"]) == {"jax.scan", "torch.scan", "c.ref"}
    assert (scan["steps_per_call"] == scan["size"].map(ks)).all()
    assert list(scan["median_call_s"]) == pytest.approx(
        list(scan["median_s"] * scan["steps_per_call"])
    )
    assert (df.loc[~fused, "steps_per_call"] == 1).all()
    assert (df["threads"] >= 1).all() and (df["device"] == "cpu").all()
    assert (df["threads_used"] == df["threads"]).all(), df[["impl", "threads_used"]]
    graphs = df.set_index(["impl", "size"])[["graphs", "graph_breaks"]]
    for one in ("torch.fullgraph", "torch.scan"):
        assert (graphs.loc[one] == [1, 0]).all().all()  # one graph per call, no break
    assert (graphs.loc["torch.compile", "graph_breaks"] >= 1).all()  # the common idiom breaks
    assert (
        graphs.drop(index=["torch.fullgraph", "torch.scan", "torch.compile"], level=0)
        .isna()
        .all()
        .all()
    )


def test_samples_are_raw_and_complete(tiny_run):
    out, _ = tiny_run
    df = pd.read_csv(out / "results.csv")
    s = pd.read_csv(out / "samples.csv.gz")
    assert list(s.columns) == list(SAMPLE_COLUMNS)
    counts = s.groupby(["impl", "size"]).size()
    for _, r in df.iterrows():
        assert counts[(r["impl"], r["size"])] == r["n_samples"]
    assert set(s["round"]) == {0, 1}


def test_every_row_is_its_raw_samples_per_step(tiny_run):
    """median_s from the raw calls, fused rows (K > 1) included: each process's median of
    call_ns / K, then their geometric mean; the pooled median likewise."""
    out, _ = tiny_run
    df = pd.read_csv(out / "results.csv")
    s = pd.read_csv(out / "samples.csv.gz").assign(
        t=lambda d: d["call_ns"] / d["steps_per_call"] / 1e9
    )
    assert (df["steps_per_call"] > 1).any()
    for _, r in df.iterrows():
        mine = s[(s["impl"] == r["impl"]) & (s["size"] == r["size"])]
        per_round = mine.groupby("round")["t"].median().to_numpy()
        assert r["median_s"] == pytest.approx(float(np.exp(np.log(per_round).mean())), rel=1e-9), r[
            "impl"
        ]
        assert r["pooled_median_s"] == pytest.approx(float(mine["t"].median()), rel=1e-9), r["impl"]
        assert r["rounds"] == len(per_round) == mine["round"].nunique()
        assert r["median_call_s"] == pytest.approx(r["median_s"] * mine["steps_per_call"].iloc[0])


def test_each_round_runs_in_its_own_worker_process(tiny_run):
    out, _ = tiny_run
    rounds = pd.read_csv(out / "rounds.csv")
    assert list(rounds.columns) == list(ROUND_COLUMNS)
    for (_, _), g in rounds.groupby(["impl", "size"]):
        assert sorted(g["round"]) == [0, 1] and g["pid"].nunique() == 2  # a fresh process per round
        assert (g["first_call_s"] > 0).all()
    by_round = rounds.groupby(["round"])["pid"].apply(set)
    assert not by_round.iloc[0] & by_round.iloc[1]


def test_run_json_records_machine_versions_and_worker_threads(tiny_run):
    out, _ = tiny_run
    meta = json.loads((out / "run.json").read_text())
    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["status"] == "complete"
    assert meta["machine"]["cpu_model"] and meta["machine"]["cores_logical"] >= 1
    assert meta["machine"]["versions"]["numpy"]
    assert "--sizes" in meta["argv"]
    threads = meta["settings"]["threads"]
    for fw in ("numpy", "torch", "jax", "null"):
        info = meta["workers"][fw]
        assert len(info["affinity"]) == threads
        assert all(p["num_threads"] <= threads for p in info["threadpools"])
    assert meta["workers"]["torch"]["torch_num_threads"] == threads


def test_list_shows_every_implementation():
    p = bench("list")
    assert p.returncode == 0
    for name in IMPLS:
        assert name in p.stdout


def test_env_prints_json():
    p = bench("env")
    assert p.returncode == 0
    assert "cpu_model" in json.loads(p.stdout)


@pytest.mark.parametrize(
    "args, words",
    [
        (["run", "--impl", "torch.nope"], ["torch.nope", "allowed", "torch.eager"]),
        (["run", "--model", "resnet"], ["resnet", "mlp"]),
        (["run", "--sizes", "huge"], ["huge", "quick", "default"]),
        (["run", "--sizes", "0x4x2"], ["batch 0"]),
        (["run", "--sizes", "4x-1x2"], ["4x-1x2"]),
        (["run", "--sizes", "4x99999999x2"], ["width"]),
        (["run", "--threads", "0"], ["--threads"]),
        (["run", "--threads", "abc"], ["--threads", "abc"]),
        (["run", "--threads", "100000"], ["--threads"]),
        (["run", "--rounds", "-3"], ["--rounds"]),
        (["run", "--budget", "nan"], ["--budget"]),
        (["fly"], ["fly"]),
        ([], ["command"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, words):
    p = bench(*args)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error:"), p.stderr
    for w in words:
        assert w in lines[0]


def test_existing_out_is_refused(tmp_path):
    (tmp_path / "taken").mkdir()
    p = bench("run", "--sizes", "1x1x1", "--out", str(tmp_path / "taken"))
    assert p.returncode == 2
    assert "never overwritten" in p.stderr


def test_derived_columns_follow_from_their_inputs(tiny_run):
    """gflops from flops_per_step and median_s; pct_peak from run.json's measured peaks; both
    non-null on every ok row but the control's."""
    out, _ = tiny_run
    df = pd.read_csv(out / "results.csv", keep_default_na=False, na_values=[""])
    peaks = json.loads((out / "run.json").read_text())["peaks"]
    for _, r in df[(df["status"] == "ok") & (df["impl"] != "null.noop")].iterrows():
        assert r["gflops"] == pytest.approx(r["flops_per_step"] / r["median_s"] / 1e9, rel=1e-9), r[
            "impl"
        ]
        assert r["pct_peak"] == pytest.approx(
            100 * r["gflops"] / peaks[r["framework"]]["gflops"], rel=1e-9
        )
    assert df.loc[df["impl"] == "null.noop", "gflops"].isna().all()
    assert (df.loc[df["impl"] == "null.noop", "framework"] == "null").all()


def test_the_results_writer_refuses_a_row_that_is_not_the_schema(tmp_path):
    from bench.results import RunDir

    run = RunDir.create(tmp_path / "r")
    row = {c: 1 for c in RESULT_COLUMNS if c not in ("schema_version", "run_id")}
    run.write_results([row])  # the schema's keys: fine
    with pytest.raises(ValueError, match=r"missing \['gflops'\], unknown \['glops'\]"):
        run.write_results([{**{k: v for k, v in row.items() if k != "gflops"}, "glops": 1}])
