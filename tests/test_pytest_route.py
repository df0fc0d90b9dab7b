"""The pytest-benchmark route on the tiniest size, importing its JSON, and comparing runs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixture_run import ROUNDS, make_run

from bench import frameworks
from bench.commands import main
from bench.sizes import parse_sizes
from models.registry import REGISTRY, for_model

ROOT = Path(__file__).resolve().parent.parent
# the route's own pytest, not a worker of this one (pytest-benchmark turns itself off in xdist workers)
ROUTE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory):
    out = tmp_path_factory.mktemp("pb") / "bench.json"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "bench/",
            "--benchmark-only",
            "--sizes",
            "1x1x1",
            "--budget",
            "0.05",
            f"--benchmark-json={out}",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        env=ROUTE_ENV,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    return out


def test_route_benchmarks_every_available_impl_with_self_describing_json(bench_json):
    doc = json.loads(bench_json.read_text())
    available = [
        i.name
        for i in for_model("mlp")
        if not frameworks.impl_unavailable(i) and "cpu" in frameworks.devices(i)
    ]
    names = [b["extra_info"]["impl"] for b in doc["benchmarks"]]
    assert sorted(names) == sorted(available)
    (size,) = parse_sizes("1x1x1")
    for b in doc["benchmarks"]:
        info = b["extra_info"]
        assert info["size"] == "B1-H1-L1" and info["flops_per_step"] > 0 and info["threads"] >= 1
        assert info["versions"]["numpy"] and info["time_unit"] == "seconds per training step"
        assert info["first_call_s"] > 0
        assert b["stats"]["rounds"] >= 10 and len(b["stats"]["data"]) == b["stats"]["rounds"]
        assert b["stats"]["median"] > 0
        expected_k = size.steps_per_call() if REGISTRY["mlp"][info["impl"]].fused else 1
        assert info["steps_per_call"] == expected_k
        if info["impl"] != "null.noop":
            assert info["update_rel_err"] < 1e-2
    assert "machine_info" in doc and "commit_info" in doc


@pytest.fixture(scope="module")
def sleep_json(tmp_path_factory):
    """The route on the known-time sleepers of tests/faulty.py: SLEEP_S per step, K steps per call."""
    out = tmp_path_factory.mktemp("pbs") / "bench.json"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "bench/",
            "--benchmark-only",
            "--sizes",
            "1x1x1",
            "--budget",
            "0.05",
            "--impl",
            "fault.sleep,fault.sleepk",
            f"--benchmark-json={out}",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        env={**ROUTE_ENV, "BENCH_EXTRA_IMPLS": "tests.faulty"},
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    return out


def test_a_fused_call_is_reported_per_step_by_the_route(sleep_json):
    from tests.faulty import SLEEP_S

    doc = json.loads(sleep_json.read_text())
    by = {b["extra_info"]["impl"]: b for b in doc["benchmarks"]}
    assert (
        by["fault.sleepk"]["extra_info"]["steps_per_call"] == 64
        and by["fault.sleep"]["extra_info"]["steps_per_call"] == 1
    )
    for (
        b
    ) in by.values():  # time.sleep overshoots a little, never undershoots; per call would be 64 x
        # the least: a busy host's stalls aside
        assert SLEEP_S <= b["stats"]["min"] <= 2 * SLEEP_S, b["stats"]["min"]


# the route's JSON of the sleepers, as above
SLEEPERS_JSON = ROOT / "tests" / "data" / "route_sleepers.json"


def test_import_pytest_keeps_per_step_times_and_k_times_them_per_call(tmp_path, monkeypatch):
    """The committed route JSON of fault.sleep (K = 1) and fault.sleepk (K = 64): the imported
    per-step median is the route's, and each raw sample's call_ns is K times its per-step time."""
    from tests.faulty import EXTRA_IMPLS

    for impl in EXTRA_IMPLS:  # as BENCH_EXTRA_IMPLS does in a run's processes, for this test only
        monkeypatch.setitem(REGISTRY[impl.model], impl.name, impl)
    doc = json.loads(SLEEPERS_JSON.read_text())
    by = {b["extra_info"]["impl"]: b for b in doc["benchmarks"]}
    run = tmp_path / "imported"
    assert main(["import-pytest", str(SLEEPERS_JSON), "--out", str(run)]) == 0
    df = pd.read_csv(run / "results.csv").set_index("impl")
    samples = pd.read_csv(run / "samples.csv.gz")
    rounds = pd.read_csv(run / "rounds.csv").set_index("impl")
    for name, b in by.items():
        k = b["extra_info"]["steps_per_call"]
        assert k == (64 if name == "fault.sleepk" else 1)
        assert df.loc[name, "median_s"] == pytest.approx(b["stats"]["median"], rel=1e-6)
        assert df.loc[name, "steps_per_call"] == k and rounds.loc[name, "steps_per_call"] == k
        assert rounds.loc[name, "median_s"] == pytest.approx(b["stats"]["median"], rel=1e-6)
        calls = samples[samples["impl"] == name]
        assert (calls["steps_per_call"] == k).all() and len(calls) == len(b["stats"]["data"])
        assert sorted(calls["call_ns"]) == [round(v * k * 1e9) for v in sorted(b["stats"]["data"])]


def test_route_is_not_collected_by_the_plain_test_command():
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_stats.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout[-2000:]
    assert "tests/test_stats.py::test_pooled_known_values" in p.stdout  # the collection worked
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0 and "tests/test_cli.py::" in p.stdout
    assert "bench/test_benchmarks.py" not in p.stdout


def test_import_round_trips_into_a_run_that_report_and_compare_accept(bench_json, tmp_path, capsys):
    run = tmp_path / "imported"
    assert main(["import-pytest", str(bench_json), "--out", str(run)]) == 0
    df = pd.read_csv(run / "results.csv")
    doc = json.loads(bench_json.read_text())
    assert len(df) == len(doc["benchmarks"]) and (df["status"] == "ok").all()
    for b in doc["benchmarks"]:
        row = df[df["impl"] == b["extra_info"]["impl"]].iloc[0]
        # samples are kept as whole nanoseconds per call: half a nanosecond is the rounding's
        assert row["median_s"] == pytest.approx(b["stats"]["median"], rel=1e-6, abs=5e-10)
        assert row["n_samples"] == b["stats"]["rounds"]
    assert main(["report", str(run)]) == 0
    assert (run / "report.md").is_file()
    capsys.readouterr()
    assert main(["compare", str(run), str(run), "--fail-above", "1"]) == 0
    out = capsys.readouterr().out
    assert "Welch" in out and " slower " not in out and " faster " not in out


@pytest.mark.parametrize(
    "content, words",
    [
        ("{not json", "not JSON"),
        ('{"benchmarks": 3}', "no 'benchmarks' list"),
        ('{"benchmarks": [{"name": "x", "extra_info": {}}]}', "not from `pytest bench/`"),
        ('{"benchmarks": []}', "holds no benchmarks"),
        ("[1, 2]", "is not a pytest-benchmark JSON file (no 'benchmarks' list)"),
        (
            '{"benchmarks": [{"name": "x", "extra_info": {"impl": "numpy.loop", "model": "mlp", "size": "s", "dims": {}}}]}',
            "benchmark 'x' in {f} lacks extra_info sweep, steps_per_call, threads: not from `pytest bench/`",
        ),
        ('{"benchmarks": [7]}', "benchmark '?' in {f} lacks extra_info impl, model"),
        (
            '{"benchmarks": [{"name": "y", "extra_info": {"impl": "numpy.nope", "model": "mlp", "size": "s", "dims": {}, '
            '"sweep": "w", "steps_per_call": 1, "threads": 1}}]}',
            "benchmark 'y' names unknown implementation mlp/numpy.nope",
        ),
        (
            '{"benchmarks": [{"name": "z", "extra_info": {"impl": "numpy.loop", "model": "mlp", "size": "s", "dims": {}, '
            '"sweep": "w", "steps_per_call": 1, "threads": 1}, "stats": {"data": []}}]}',
            "benchmark 'z' has no raw data: use --benchmark-json, or --benchmark-save with --benchmark-save-data",
        ),
        (None, "cannot read {f}: No such file or directory"),
        (
            '{"benchmarks": [{"name": "x"}]}',
            "benchmark 'x' in {f} lacks extra_info impl, model, size, dims, sweep, steps_per_call, threads",
        ),
        ('{"benchmarks": [{"extra_info": {}}]}', "benchmark '?' in {f} lacks extra_info impl"),
        (
            '{"benchmarks": [{"name": "m", "extra_info": {"impl": "x", "model": "nomodel", "size": "s", "dims": {}, '
            '"sweep": "w", "steps_per_call": 1, "threads": 1}}]}',
            "benchmark 'm' names unknown implementation nomodel/x",
        ),
        (
            '{"benchmarks": [{"name": "n", "extra_info": {"impl": "numpy.loop", "model": "mlp", "size": "s", "dims": {}, '
            '"sweep": "w", "steps_per_call": 1, "threads": 1}}]}',
            "benchmark 'n' has no raw data",
        ),
    ],
)
def test_malformed_json_is_refused_in_one_line(tmp_path, capsys, content, words):
    f = tmp_path / "b.json"
    if content is not None:
        f.write_text(content)
    words = words.replace("{f}", str(f))
    assert main(["import-pytest", str(f), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def plant(tmp_path, factor: float):
    a = make_run(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    s = pd.read_csv(b / "samples.csv")
    slow = (s["impl"] == "torch.eager") & (s["size"] == "B128-H128-L2")
    s.loc[slow, "call_ns"] = (s.loc[slow, "call_ns"] * factor).round().astype(int)
    s.to_csv(b / "samples.csv", index=False)
    r = pd.read_csv(b / "rounds.csv")
    slow = (r["impl"] == "torch.eager") & (r["size"] == "B128-H128-L2")
    r.loc[slow, "median_s"] *= factor  # every process of that case `factor` times as slow
    r.to_csv(b / "rounds.csv", index=False)
    return a, b


@pytest.fixture()
def planted(tmp_path):
    return plant(tmp_path, 2.0)


@pytest.mark.parametrize("factor, change", [(1.10, "slower"), (1 / 1.10, "faster")])
def test_compare_calls_a_planted_10_percent_change_in_its_direction(tmp_path, factor, change):
    a, b = plant(tmp_path, factor)
    assert main(["compare", str(a), str(b), "--csv", str(tmp_path / "c.csv")]) == 0
    df = pd.read_csv(tmp_path / "c.csv", keep_default_na=False).set_index(["impl", "size"])
    r = df.loc[("torch.eager", "B128-H128-L2")]
    assert r["change"] == change
    assert r["ratio_b_a"] == pytest.approx(factor, rel=1e-6)
    assert r["ratio_ci_low"] < factor < r["ratio_ci_high"] and (r["ratio_ci_low"] > 1) == (
        factor > 1
    )
    assert (df.drop(index=[("torch.eager", "B128-H128-L2")])["change"] == "").all()


def test_compare_finds_a_planted_2x_slowdown_and_nothing_else(planted, capsys, tmp_path):
    a, b = planted
    assert main(["compare", str(a), str(b), "--csv", str(tmp_path / "c.csv")]) == 0
    df = pd.read_csv(tmp_path / "c.csv", keep_default_na=False)
    hit = df[df["change"] != ""]
    assert list(zip(hit["impl"], hit["size"], strict=True)) == [("torch.eager", "B128-H128-L2")]
    r = hit.iloc[0]
    assert r["change"] == "slower"
    assert (
        r["ratio_b_a"] == pytest.approx(2.0, rel=1e-6)
        and r["ratio_ci_low"] <= 2.0 <= r["ratio_ci_high"]
    )
    assert r["p_value"] < 0.05 and r["n_a"] == r["n_b"] == ROUNDS
    assert (df.loc[df["change"] == "", "ratio_b_a"] == 1.0).all()


def test_compare_fail_above_and_machine_flags(planted, capsys):
    a, b = planted
    assert main(["compare", str(a), str(b), "--fail-above", "50"]) == 1
    assert "called slower by more than 50%" in capsys.readouterr().out
    assert main(["compare", str(a), str(b), "--fail-above", "150"]) == 0
    meta = json.loads((b / "run.json").read_text())
    meta["machine"]["cpu_model"] = "another CPU"
    (b / "run.json").write_text(json.dumps(meta))
    capsys.readouterr()
    main(["compare", str(a), str(b)])
    assert "different machine: cpu_model" in capsys.readouterr().out


class FakeBenchmark:
    """pytest-benchmark's fixture as the route uses it: extra_info, the `_timer` it scales, and
    pedantic(), which times each call with `_timer` (as pytest-benchmark's runner does)."""

    def __init__(self):
        import time

        self._timer, self.extra_info, self.data = time.perf_counter, {}, []

    def pedantic(self, fn, rounds, iterations, warmup_rounds):
        self.rounds, self.warmup_rounds, self.iterations = rounds, warmup_rounds, iterations
        for _ in range(warmup_rounds):
            fn()
        for _ in range(rounds):
            t0 = self._timer()
            fn()
            self.data.append(self._timer() - t0)


@pytest.mark.parametrize("name, k", [("fault.sleep", 1), ("fault.sleepk", 64)])
def test_the_route_times_a_step_not_a_call_in_process(name, k, monkeypatch):
    """bench_case on the sleepers in this process: the statistics are per training step whatever K."""
    from bench.sweep.pytest_route import bench_case
    from tests.faulty import EXTRA_IMPLS, SLEEP_S

    impl = next(i for i in EXTRA_IMPLS if i.name == name)
    (size,) = parse_sizes("1x1x1")
    b = FakeBenchmark()
    bench_case(b, impl, size, threads=1, budget_s=0.02)
    assert (
        b.extra_info["steps_per_call"] == k
        and b.extra_info["time_unit"] == "seconds per training step"
    )
    assert len(b.data) >= 10
    assert SLEEP_S <= min(b.data) <= 2 * SLEEP_S, min(b.data)  # per step; per call would be 64 x
    assert (b.rounds, b.warmup_rounds, b.iterations) == (
        10,
        2,
        1,
    )  # 0.02 s holds under 10 calls: the least
    info = b.extra_info
    # forward 2 (784 + 10), both weight gradients as much again, the second layer's input gradient 2 x 10
    assert (
        info["flops_per_step"] == 2 * (784 + 10) * 2 + 2 * 10 == 3196
        and info["update_rel_err"] < 1e-6
    )
    assert {
        k: info[k]
        for k in (
            "impl",
            "model",
            "framework",
            "mode",
            "device",
            "tf32",
            "size",
            "sweep",
            "dims",
            "batch",
            "width",
            "depth",
            "d_in",
            "classes",
            "threads",
            "ops_per_step",
        )
    } == {
        "impl": name,
        "model": "mlp",
        "framework": "numpy",
        "mode": impl.mode,
        "device": "cpu",
        "tf32": False,
        "size": "B1-H1-L1",
        "sweep": "custom",
        "dims": {"batch": 1, "width": 1, "depth": 1},
        "batch": 1,
        "width": 1,
        "depth": 1,
        "d_in": 784,
        "classes": 10,
        "threads": 1,
        "ops_per_step": 33,
    }
    assert (
        info["first_call_s"] > 0
        and info["loss_rel_err"] < 1e-6
        and info["op_unit"] == "NumPy calls"
    )
    assert info["versions"]["numpy"] == np.__version__


@pytest.mark.parametrize("budget_s, rounds", [(0.3, 150), (0.01, 10)])
def test_the_route_sizes_its_rounds_from_the_budget(budget_s, rounds, monkeypatch):
    """The estimate's three calls read as 6 ms on a stubbed clock (2 ms a call, whatever the host's
    load): 0.3 s of budget is 150 rounds, at least 10, and a 20th of them warm up."""
    from types import SimpleNamespace

    from bench.sweep import pytest_route
    from tests.faulty import EXTRA_IMPLS

    reads = iter([0.0, 0.0059999999])  # the two reads around the estimate's three calls
    monkeypatch.setattr(pytest_route, "time", SimpleNamespace(perf_counter=lambda: next(reads)))
    impl = next(i for i in EXTRA_IMPLS if i.name == "fault.sleep")
    (size,) = parse_sizes("1x1x1")
    b = FakeBenchmark()
    pytest_route.bench_case(b, impl, size, threads=1, budget_s=budget_s)
    assert b.rounds == rounds and b.warmup_rounds == max(2, rounds // 20) and len(b.data) == rounds


def run_meta(d: dict):
    """A run record with only these keys of run.json (the others empty)."""
    from bench.runmeta import RunMeta

    return RunMeta("r", "sweep", d.get("settings", {}), d.get("machine", {}))


def test_header_flags_name_every_difference_that_makes_runs_unlike():
    from bench.report.compare import header_flags as flags

    def header_flags(a, b):
        return flags(run_meta(a), run_meta(b))

    a = {
        "machine": {
            "cpu_model": "X",
            "host": "h1",
            "cores_logical": 2,
            "versions": {"torch": "2.1", "numpy": "2.0"},
        },
        "settings": {"threads": 1},
    }
    assert header_flags(a, a) == []
    b = {
        "machine": {
            "cpu_model": "Y",
            "host": "h2",
            "cores_logical": 4,
            "versions": {"torch": "2.2", "numpy": "2.0", "jax": "0.5"},
        },
        "settings": {"threads": 2},
    }
    assert header_flags(a, b) == [
        "different machine: cpu_model 'X' vs 'Y'",
        "different machine: host 'h1' vs 'h2'",
        "different machine: cores_logical 2 vs 4",
        "different torch: 2.1 vs 2.2",
        "different threads: 1 vs 2",
    ]  # jax only in B: not a difference of versions
    assert header_flags({}, {"machine": {"versions": None}, "settings": {}}) == []
    # a run before --chunks had 1
    assert header_flags(a, {**a, "settings": {"threads": 1, "chunks": 1}}) == []
    assert header_flags(a, {**a, "settings": {"threads": 1, "chunks": 5}})[0].startswith(
        "different chunks: 1 vs 5 ("
    )


def test_import_pytest_carries_every_field_the_route_recorded(tmp_path, monkeypatch):
    """Each results/rounds/run.json field of the imported run against the committed route JSON."""
    from tests.faulty import EXTRA_IMPLS

    for impl in EXTRA_IMPLS:
        monkeypatch.setitem(REGISTRY[impl.model], impl.name, impl)
    doc = json.loads(SLEEPERS_JSON.read_text())
    run = tmp_path / "imported"
    assert main(["import-pytest", str(SLEEPERS_JSON), "--out", str(run)]) == 0
    res = pd.read_csv(run / "results.csv").set_index("impl")
    rounds = pd.read_csv(run / "rounds.csv").set_index("impl")
    meta = json.loads((run / "run.json").read_text())
    for b in doc["benchmarks"]:
        info, data = b["extra_info"], np.asarray(b["stats"]["data"])
        r, rd = res.loc[info["impl"]], rounds.loc[info["impl"]]
        assert (r["size"], r["model"], r["status"], r["rounds"], r["n_samples"]) == (
            info["size"],
            "mlp",
            "ok",
            1,
            len(data),
        )
        assert r["first_call_s"] == pytest.approx(info["first_call_s"]) and rd[
            "first_call_s"
        ] == pytest.approx(info["first_call_s"])
        assert r["loss_rel_err"] == pytest.approx(info["loss_rel_err"]) and r[
            "update_rel_err"
        ] == pytest.approx(info["update_rel_err"])
        assert (
            r["framework_ops_per_step"] == info["ops_per_step"] and r["threads"] == info["threads"]
        )
        q25, q75 = np.percentile(data, [25, 75])
        assert rd["iqr_rel"] == pytest.approx((q75 - q25) / np.median(data)) and rd["round"] == 0
        assert rd["n_samples"] == len(data) and rd["median_s"] == pytest.approx(np.median(data))
    mi = doc["machine_info"]
    assert meta["status"] == "complete" and meta["run_id"] == "imported"
    assert meta["created_utc"] == meta["finished_utc"] == doc["datetime"]
    assert meta["argv"] == ["import-pytest", str(SLEEPERS_JSON)]
    assert meta["source"] == {
        "pytest_benchmark_json": str(SLEEPERS_JSON),
        "version": doc["version"],
    }
    assert (
        meta["settings"]["model"] == "mlp"
        and meta["settings"]["threads"] == 2
        and meta["settings"]["rounds"] == 1
    )
    assert meta["settings"]["impls"] == ["fault.sleep", "fault.sleepk"]
    assert [z["label"] for z in meta["settings"]["sizes"]] == ["B1-H1-L1"]
    assert meta["machine"] == {
        "host": mi["node"],
        "cpu_model": mi["cpu"]["brand_raw"],
        "cores_logical": mi["cpu"]["count"],
        "memory_total_gb": None,
        "os": f"{mi['system']} {mi['release']}",
        "python": mi["python_version"],
        "versions": doc["benchmarks"][0]["extra_info"]["versions"],
        "git_commit": doc["commit_info"]["id"],
    }
    assert meta["workers"] == {} and meta["peaks"] == {}
    assert meta["settings"]["budget"] == {
        "seconds": 0.05,
        "min_samples": 5,
        "max_samples": 5000,
        "warmup_s": 0.05,
    }
    assert meta["settings"]["case_timeout_s"] == 0.0 and (res["run_id"] == "imported").all()
    samples = pd.read_csv(run / "samples.csv.gz")
    assert (samples["round"] == 0).all() and (rounds["pid"] == 0).all()
    assert not (run / "samples.csv").exists() and (run / "samples.csv.gz").is_file()


def test_import_pytest_keeps_each_size_and_reads_a_sparse_machine_record(tmp_path, monkeypatch):
    """The same benchmarks at two sizes; a JSON whose machine_info has no cpu block (the CPU then
    comes from `processor`) and whose benchmarks carry no versions."""
    from tests.faulty import EXTRA_IMPLS

    for impl in EXTRA_IMPLS:
        monkeypatch.setitem(REGISTRY[impl.model], impl.name, impl)
    doc = json.loads(SLEEPERS_JSON.read_text())
    two = json.loads(json.dumps(doc["benchmarks"][0]))
    two["extra_info"].update(
        size="B2-H1-L1", dims={"batch": 2, "width": 1, "depth": 1}, sweep="width"
    )
    doc["benchmarks"].append(two)
    doc["machine_info"] = {"node": "n1", "processor": "some cpu", "system": "Linux", "release": "6"}
    for b in doc["benchmarks"]:
        b["extra_info"].pop("versions")
    f = tmp_path / "two.json"
    f.write_text(json.dumps(doc))
    run = tmp_path / "imported"
    assert main(["import-pytest", str(f), "--out", str(run)]) == 0
    res = pd.read_csv(run / "results.csv")
    assert sorted(zip(res["impl"], res["size"], strict=True)) == [
        ("fault.sleep", "B1-H1-L1"),
        ("fault.sleep", "B2-H1-L1"),
        ("fault.sleepk", "B1-H1-L1"),
    ]
    meta = json.loads((run / "run.json").read_text())
    assert [(z["label"], z["sweep"]) for z in meta["settings"]["sizes"]] == [
        ("B1-H1-L1", "custom"),
        ("B2-H1-L1", "width"),
    ]
    assert meta["machine"]["cpu_model"] == "some cpu" and meta["machine"]["cores_logical"] is None
    assert meta["machine"]["versions"] == {}


def test_fail_above_counts_only_changes_beyond_the_percentage():
    from bench.report.compare import slower_beyond

    df = pd.DataFrame(
        {
            "change": ["slower", "slower", "slower", "faster", ""],
            "ratio_b_a": [1.5, 1.5001, 1.499, 0.5, 1.6],
        }
    )
    assert slower_beyond(df, 50)["ratio_b_a"].tolist() == [1.5001]
    assert slower_beyond(df.iloc[:0], 50).empty


def test_route_cases_are_every_selected_impl_at_every_size_size_major():
    from bench.sweep.pytest_route import cases

    got = [(i.name, z.label) for i, z in cases("c.ref,numpy.loop", "1x1x1,4x8x2")]
    assert got == [
        ("c.ref", "B1-H1-L1"),
        ("numpy.loop", "B1-H1-L1"),
        ("c.ref", "B4-H8-L2"),
        ("numpy.loop", "B4-H8-L2"),
    ]
    gpt = cases("c.ref", "1x8x16x1x2", model="gpt")
    assert [(i.model, z.model, z.label) for i, z in gpt] == [
        ("gpt", "gpt", "B1-T8-C16-L1-NH2-V512")
    ]
    with pytest.raises(ValueError, match="nope"):
        cases("nope", "1x1x1")


def test_the_route_skips_what_cannot_run_and_fails_a_wrong_step(monkeypatch):
    from bench.sweep.pytest_route import bench_case
    from tests.faulty import EXTRA_IMPLS

    (size,) = parse_sizes("1x1x1")
    graphs = REGISTRY["mlp"]["torch.cudagraphs"]  # CUDA only
    with pytest.raises(pytest.skip.Exception, match="cuda only"):
        bench_case(FakeBenchmark(), graphs, size, threads=1, budget_s=0.01, device="cpu")
    wrong = next(i for i in EXTRA_IMPLS if i.name == "fault.wrong")
    with pytest.raises(
        pytest.fail.Exception, match="fault.wrong B1-H1-L1 failed the equivalence gate: .*update"
    ):
        bench_case(FakeBenchmark(), wrong, size, threads=1, budget_s=0.01, device="cpu")
    b = FakeBenchmark()  # a step with no gate: its errors are recorded as None
    bench_case(b, REGISTRY["mlp"]["null.noop"], size, threads=1, budget_s=0.01, device="cpu")
    assert b.extra_info["loss_rel_err"] is None and b.extra_info["update_rel_err"] is None


def test_the_route_divides_by_k_from_two_steps_per_call_on(monkeypatch):
    """A fused call of K = 2 (the large sizes) is reported per step too."""
    import dataclasses

    from bench.sizes import Size
    from bench.sweep.pytest_route import bench_case
    from tests.faulty import EXTRA_IMPLS, SLEEP_S

    class TwoSteps(Size):
        def steps_per_call(self) -> int:
            return 2

    (size,) = parse_sizes("1x1x1")
    two = TwoSteps(**{f.name: getattr(size, f.name) for f in dataclasses.fields(size)})
    b = FakeBenchmark()
    bench_case(
        b,
        next(i for i in EXTRA_IMPLS if i.name == "fault.sleepk"),
        two,
        threads=1,
        budget_s=0.02,
        device="cpu",
    )
    assert b.extra_info["steps_per_call"] == 2
    # per call would be 2 x; the least: a busy host's stalls aside
    assert SLEEP_S <= min(b.data) <= 1.5 * SLEEP_S


def test_compare_uses_the_base_rounds_sd_of_a_run_with_extra_rounds(tmp_path):
    """Run B with 3 base rounds (then extras, as run.json says): compare's test, CI and detectable
    change take B's sd from its first 3 processes (Stein), A's from all of its."""
    from bench.report.compare import _spread, compare_runs
    from bench.stats import Drift, detectable_change, welch_log

    a, b = plant(tmp_path, 1.10)
    for run, base in ((a, 2), (b, 3)):
        meta = json.loads((run / "run.json").read_text())
        meta["settings"].update(rounds=base, max_rounds=16)
        (run / "run.json").write_text(json.dumps(meta))
    df, _, _ = compare_runs(a, b)
    r = df.set_index(["impl", "size"]).loc[("torch.eager", "B128-H128-L2")]
    ua = (
        pd.read_csv(a / "rounds.csv")
        .query("impl == 'torch.eager' and size == 'B128-H128-L2'")
        .sort_values("round")
    )
    ub = (
        pd.read_csv(b / "rounds.csv")
        .query("impl == 'torch.eager' and size == 'B128-H128-L2'")
        .sort_values("round")
    )
    ma, mb = ua["median_s"].to_numpy(), ub["median_s"].to_numpy()
    ratio, lo, hi, p = welch_log(ma, mb, first_a=2, first_b=3)
    assert (r["ratio_b_a"], r["ratio_ci_low"], r["ratio_ci_high"], r["p_value"]) == pytest.approx(
        (ratio, lo, hi, p)
    )
    assert r["median_a_s"] == pytest.approx(np.exp(np.log(ma).mean()))
    assert r["median_b_s"] == pytest.approx(np.exp(np.log(mb).mean()))
    sa, sb = np.log(ma[:2]).std(ddof=1), np.log(mb[:3]).std(ddof=1)
    want = detectable_change(Drift(sa, ma.size, 1), Drift(sb, mb.size, 2), 0.03)
    assert r["detectable"] == pytest.approx(want)
    assert _spread([1.0, np.e], None) == (pytest.approx(np.sqrt(0.5)), 1)
    assert np.isnan(_spread([2.0], None)[0]) and _spread([2.0], None)[1] == 0


def test_header_flags_read_runs_without_machine_or_settings():
    from bench.report.compare import header_flags

    assert (
        header_flags(run_meta({"machine": {"versions": None}, "settings": {}}), run_meta({})) == []
    )


def test_a_case_ok_in_one_run_only_is_listed_not_compared(tmp_path):
    from bench.report.compare import compare_runs

    a, b = plant(tmp_path, 1.0)
    res = pd.read_csv(b / "results.csv")
    res.loc[(res["impl"] == "torch.eager") & (res["size"] == "B128-H128-L2"), "status"] = "error"
    res.to_csv(b / "results.csv", index=False)
    df, _, only = compare_runs(a, b)
    assert ("torch.eager", "B128-H128-L2") not in set(zip(df["impl"], df["size"], strict=True))
    assert only == ["torch.eager B128-H128-L2: only in A"]
    res["status"] = "error"
    res.to_csv(b / "results.csv", index=False)
    none, _, _ = compare_runs(a, b)
    assert none.empty and list(none.columns) == [
        "impl",
        "size",
        "median_a_s",
        "median_b_s",
        "ratio_b_a",
        "ratio_ci_low",
        "ratio_ci_high",
        "p_value",
        "change",
        "n_a",
        "n_b",
        "detectable",
    ]


def test_verdict_boundaries():
    from bench.report.compare import verdict

    assert verdict(1.5, 0.05, 0.03) == ""  # p must be below alpha
    # beyond the threshold
    assert verdict(1.25, 1e-6, 0.25) == "" and verdict(1.2500001, 1e-6, 0.25) == "slower"
    assert verdict(0.5, 1e-6, 0.25) == "faster"
