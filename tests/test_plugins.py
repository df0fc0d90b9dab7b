"""Adding a model, an implementation or a framework in one place: a copied model package is a
model, a fourth framework is one file and one record, nothing in bench/ branches on a framework's
name, the shared options have one default, and an older run reads the same after `bench upgrade`."""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from fixture_run import make_run

from bench import frameworks, options
from bench.results import read_pipeline, read_run
from bench.schema import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parent.parent


def bench(*args, env=None, timeout=900):
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
def test_a_copied_model_package_is_a_model(tmp_path):
    """models/mlp copied under another name, nothing else edited: the registry finds it, it
    lists and runs with ok rows of its own name."""
    shutil.copytree(
        ROOT / "models" / "mlp",
        tmp_path / "models" / "widget",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    env = {"BENCH_MODEL_PATH": str(tmp_path / "models")}
    listed = bench("list", env=env)
    assert listed.returncode == 0 and "widget" in listed.stdout, listed.stderr[-2000:]
    out = tmp_path / "run"
    p = bench(
        "run",
        "--model",
        "widget",
        "--sizes",
        "quick",
        "--impl",
        "numpy.loop,jax.jit,c.ref",
        "--rounds",
        "1",
        "--budget",
        "0.01",
        "--no-report",
        "--out",
        str(out),
        env=env,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    df = pd.read_csv(out / "results.csv")
    assert set(df["model"]) == {"widget"} and set(df["impl"]) == {"numpy.loop", "jax.jit", "c.ref"}
    assert (df["status"] == "ok").all(), df[["impl", "status", "error"]]


@pytest.mark.slow
def test_a_fourth_framework_is_one_file_and_one_record(tmp_path):
    env = {
        "BENCH_EXTRA_FRAMEWORKS": "tests.fake_framework",
        "BENCH_EXTRA_IMPLS": "tests.fake_framework",
    }
    out = tmp_path / "run"
    p = bench(
        "run",
        "--sizes",
        "quick",
        "--impl",
        "fake.loop,c.ref",
        "--rounds",
        "2",
        "--budget",
        "0.01",
        "--out",
        str(out),
        env=env,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    df = pd.read_csv(out / "results.csv")
    fake = df[df["impl"] == "fake.loop"]
    assert len(fake) == 2 and (fake["status"] == "ok").all() and set(fake["framework"]) == {"fake"}
    meta = json.loads((out / "run.json").read_text())
    assert "fake" in meta["workers"] and meta["peaks"]["fake"]["gflops"] > 0


FRAMEWORK_NAMES = {"numpy", "torch", "jax", "c", "null"}
ALLOWED = {"bench/pipeline/jax_rank.py"}  # the JAX rank program tells its own forms apart


def _names(node) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} & FRAMEWORK_NAMES
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return set().union(*(_names(e) for e in node.elts))
    return set()


def framework_comparisons(source: str) -> list[str]:
    """Comparisons with a framework's name (==, !=, in, not in), as source text."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            if _names(node.left).union(*(_names(c) for c in node.comparators)):
                out.append(ast.unparse(node))
    return out


def test_nothing_in_bench_branches_on_a_framework_name():
    found = {}
    for f in sorted((ROOT / "bench").rglob("*.py")):
        rel = f.relative_to(ROOT).as_posix()
        if rel in ("bench/frameworks.py", *ALLOWED):
            continue
        hits = framework_comparisons(f.read_text())
        if hits:
            found[rel] = hits
    assert not found, found
    assert len(ALLOWED) <= 2
    assert framework_comparisons('if fw == "c" or name in ("torch", "jax"):\n    pass') == [
        "fw == 'c'",
        "name in ('torch', 'jax')",
    ]  # the check finds a planted branch


def _defaults(add) -> dict:
    p = argparse.ArgumentParser()
    add(p)
    return {
        a.dest: (a.default, a.help) for a in p._actions if a.dest in ("threads", "device", "model")
    }


def test_the_shared_options_have_one_default_in_every_command_and_the_pytest_route():
    from bench.commands import pipeline, profile, run

    class Group:  # a pytest option group: addoption takes argparse's arguments
        def __init__(self):
            self.p = argparse.ArgumentParser()

        def addoption(self, *flags, **kwargs):
            self.p.add_argument(*flags, **kwargs)

        def getgroup(self, *args):
            return self

    g = Group()
    import bench.conftest as route

    route.pytest_addoption(g)
    seen = [_defaults(run.add_arguments), _defaults(profile.add_arguments), _defaults(lambda p: p)]
    seen[2] = {
        a.dest: (a.default, a.help)
        for a in g.p._actions
        if a.dest in ("threads", "device", "model")
    }
    piped = _defaults(pipeline.add_arguments)
    for name in ("threads", "model"):
        assert len({s[name][0] for s in seen}) == 1, (name, seen)
    for name in ("device", "model"):
        assert piped[name][0] == seen[0][name][0]
    assert seen[0]["model"][0] == options.DEFAULT_MODEL and seen[0]["device"][0] == "cpu"
    assert "default" in seen[0]["threads"][1] and "CPUs less one" in seen[0]["threads"][1]
    assert options.threads_or_default(None) == max(options.cpus() - 1, 1)


def _as_schema_3(run: Path) -> None:
    """A schema-5 fixture run written as the schema-3 harness wrote it: no role or machine-peak
    columns, version 3 in every file."""
    res = pd.read_csv(run / "results.csv", keep_default_na=False)
    res = res.drop(columns=["role", "pct_machine_peak"]).assign(schema_version=3)
    res.to_csv(run / "results.csv", index=False)
    for name in ("rounds.csv", "samples.csv"):
        df = pd.read_csv(run / name, keep_default_na=False).assign(schema_version=3)
        df.to_csv(run / name, index=False)
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "schema_version": 3}))


def test_a_schema_3_run_reads_the_same_before_and_after_bench_upgrade(tmp_path):
    from bench.commands import main

    run = make_run(tmp_path / "old")
    _as_schema_3(run)
    before = read_run(run)
    assert (before[0]["role"].isin(["floor", "control", "fused", ""])).all()
    assert main(["upgrade", str(run)]) == 0
    after = read_run(run)
    for a, b in zip(before[:3], after[:3], strict=True):
        pd.testing.assert_frame_equal(a, b)
    old, new = before[3].to_json(), after[3].to_json()
    now = SCHEMA_VERSION
    assert (old.pop("schema_version"), new.pop("schema_version")) == (3, now) and old == new
    raw = pd.read_csv(run / "results.csv")
    assert set(raw["schema_version"]) == {now} and "role" in raw.columns
    assert json.loads((run / "run.json").read_text())["schema_version"] == now


def test_a_schema_3_probe_reads_the_same_after_bench_upgrade(tmp_path):
    from bench.commands import main

    src = ROOT / "tests" / "data" / "schema3_probe"  # a schema-3 probe as it was committed
    run = tmp_path / "probe"
    shutil.copytree(src, run)
    before = read_pipeline(run)
    assert set(before["framework"]) == {"torch"}  # schema 3: the probe ran torch only
    assert main(["upgrade", str(run)]) == 0
    pd.testing.assert_frame_equal(before, read_pipeline(run))
    assert set(pd.read_csv(run / "pipeline.csv")["schema_version"]) == {SCHEMA_VERSION}
    assert (before["nodes"] == 1).all() and (before["cross_node_sends"] == 0).all()


def test_a_framework_record_owns_its_devices_and_floor():
    assert [f.name for f in frameworks.gpu_frameworks()] == ["torch", "jax"]
    assert [f.name for f in frameworks.known().values() if f.floor] == ["c"]
    assert set(frameworks.pipeline_forms()) == {"torch", "jax", "jax-dist", "c"}
    assert frameworks.blas_users("openblas") == ("numpy", "c")
