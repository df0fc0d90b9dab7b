"""`bench pipeline` beyond PyTorch: JAX's GPipe (shard_map over host devices, and one process per
stage over jax.distributed), the C floor over MPI, each against the float64 gradients; the default
microbatch list; two nodes on loopback; nothing listening beyond loopback by default; the
report's ratios with CIs and its ties."""

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from bench.pipeline.settings import FRAMEWORKS
from bench.schema import PIPELINE_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("torch")
# this file's processes only
TAG = {"BENCH_TEST_TAG": f"test_pipeline_frameworks-{uuid.uuid4().hex}"}


def bench(*args, env=None, timeout=900):
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **TAG, **(env or {})},
    )


def start(*args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **TAG, **(env or {})},
    )


def mine(proc) -> bool:
    try:
        return proc.environ().get("BENCH_TEST_TAG") == TAG["BENCH_TEST_TAG"]
    except psutil.Error:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def two_nodes(endpoint: str, *args: str) -> list[str]:
    return [
        "pipeline",
        "--nnodes",
        "2",
        "--rdzv-endpoint",
        endpoint,
        "--microbatches",
        "2",
        "--batch",
        "16",
        *args,
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "framework, schedules",
    [("torch", "gpipe,hand-1f1b"), ("jax-dist", "gpipe"), ("c", "gpipe,1f1b")],
)
def test_two_nodes_on_loopback_give_a_gated_result(framework, schedules, tmp_path):
    """Node 1 connects to node 0 and starts the ranks node 0 sends it; they meet node 0's at
    the group's rendezvous (c10d, jax.distributed, an MPI port); node 0 records them."""
    common = two_nodes(f"127.0.0.1:{free_port()}", "--framework", framework)
    common += ["--schedules", schedules, "--rounds", "2", "--steps", "2", "--case-timeout", "30"]
    node1 = start(*common, "--node-rank", "1", "--out", str(tmp_path / "node1"))
    node0 = bench(*common, "--node-rank", "0", "--out", str(tmp_path / "node0"))
    _, err1 = node1.communicate(timeout=120)
    assert node0.returncode == 0, node0.stderr[-2000:]
    assert node1.returncode == 0 and "node 0 finished the probe" in err1, err1[-2000:]
    df = pd.read_csv(tmp_path / "node0" / "pipeline.csv")
    assert set(df["schedule"]) == set(schedules.split(",")) and (df["status"] == "ok").all()
    assert (df["grad_rel_err"] < 1e-5).all() and (df["rounds"] == 2).all()
    assert (df["nodes"] == 2).all() and (df["ranks_per_node"] == 1).all()
    assert (df["cross_node_sends"] == 4).all()  # M = 2 activations and 2 gradients
    assert not (tmp_path / "node1" / "pipeline.csv").exists()  # only node 0 records
    assert "| 2 x 1 | 4 |" in (tmp_path / "node0" / "report.md").read_text()


def tree(proc) -> list[psutil.Process]:
    try:
        root = psutil.Process(proc.pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def wait_for_ranks(proc, module: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(module in " ".join(p.cmdline()) for p in tree(proc) if p.is_running()):
            time.sleep(3)  # the ranks meet and step
            return
        time.sleep(0.2)
    raise AssertionError(f"no {module} process started")


def left_behind() -> list[psutil.Process]:
    time.sleep(1)
    return [p for p in psutil.process_iter() if mine(p) and p.pid != os.getpid()]


@pytest.mark.slow
def test_a_node_that_dies_fails_its_case_and_leaves_no_process(tmp_path):
    """Node 1 dies with every process it started (as a machine does): node 0 fails the case at
    once, not at the group timeout, and ends. Then node 0 dies: node 1 kills its ranks and
    exits 2. No process of either is left."""
    slow = ["--framework", "c", "--schedules", "gpipe", "--rounds", "2", "--steps", "10000"]
    common = two_nodes(f"127.0.0.1:{free_port()}", *slow, "--case-timeout", "60")
    common[common.index("--batch") + 1] = "512"
    node1 = start(*common, "--node-rank", "1", "--out", str(tmp_path / "node1"))
    node0 = start(*common, "--node-rank", "0", "--out", str(tmp_path / "node0"))
    wait_for_ranks(node1, "bench.pipeline.c_rank")
    killed = time.monotonic()
    for p in tree(node1):
        p.kill()
    _, err0 = node0.communicate(timeout=180)
    assert time.monotonic() - killed < 60, err0[-2000:]
    df = pd.read_csv(tmp_path / "node0" / "pipeline.csv")
    assert df["status"].tolist() == ["crashed"] and "node 1 left" in df["error"][0], err0
    assert not left_behind()

    node1 = start(*common, "--node-rank", "1", "--out", str(tmp_path / "again1"))
    node0 = start(*common, "--node-rank", "0", "--out", str(tmp_path / "again0"))
    wait_for_ranks(node0, "bench.pipeline.c_rank")
    for p in tree(node0):
        p.kill()
    _, err1 = node1.communicate(timeout=60)
    assert node1.returncode == 2 and "node 0 went away" in err1.strip().splitlines()[-1], err1
    assert not left_behind()


@pytest.mark.parametrize("node", ["0", "1"])
def test_a_node_alone_exits_2_in_one_line(node, tmp_path):
    p = bench(
        *two_nodes(f"127.0.0.1:{free_port()}", "--case-timeout", "2"),
        "--node-rank",
        node,
        "--out",
        str(tmp_path / "r"),
        timeout=120,
    )
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    assert ("did not join" if node == "0" else "no node 0 answered") in lines[0]
    assert not (tmp_path / "r" / "run.json").exists()


@pytest.mark.parametrize("framework", ["torch", "jax-dist", "c"])
def test_a_group_meets_at_one_rendezvous_with_each_rank_on_its_nodes_address(framework):
    """P = 4 on 2 nodes: one rendezvous at node 0's address for the whole group; ranks 2 and 3
    (C: node 1's mpiexec, first rank 2) bind node 1's address."""
    from bench.pipeline.probe import group_specs
    from bench.pipeline.settings import PipelineSettings

    s = PipelineSettings("mlp", {"batch": 16}, 4, [2], ["gpipe"], 1, 1, nnodes=2)
    addresses = {0: "127.0.0.1", 1: "127.0.0.2"}
    specs = group_specs(s, framework, False, [(framework, "gpipe", 2)], 0, addresses)
    assert len({x.init_method for x in specs}) == 1 and "127.0.0.1:" in specs[0].init_method
    ranks = [0, 2] if framework == "c" else [0, 1, 2, 3]
    assert [x.rank for x in specs] == ranks and all(x.nnodes == 2 for x in specs)
    assert [x.bind for x in specs] == [addresses[r // 2] for r in ranks]
    assert [x.node for x in specs] == [r // 2 for r in ranks]
    one = PipelineSettings("mlp", {"batch": 16}, 2, [2], ["gpipe"], 1, 1)
    specs = group_specs(one, framework, False, [(framework, "gpipe", 2)], 0)
    assert len({x.init_method for x in specs}) == 1 and {x.bind for x in specs} == {"127.0.0.1"}


def test_sends_between_nodes_are_counted_per_stage_boundary():
    """P = 4 on 2 nodes (ranks 0-1 and 2-3), M = 4: a boundary that crosses carries 4 + 4 sends.
    GPipe's stages 0-3 cross once (1|2); interleaved's 0-7 on ranks 0,1,2,3,0,1,2,3 cross at
    1|2, 3|4 and 5|6; the V's on ranks 0,1,2,3,3,2,1,0 at 1|2 and 5|6."""
    from bench.pipeline.rows import cross_node_sends

    want = {"gpipe": 8, "interleaved-1f1b": 24, "dualpipev": 16, "one-process": 0}
    assert {name: cross_node_sends(name, 4, 4, 2) for name in want} == want
    assert cross_node_sends("gpipe", 4, 4, 4) == 24 and cross_node_sends("gpipe", 4, 4, 1) == 0


@pytest.mark.parametrize(
    "args, words",
    [
        (["--rdzv-endpoint", "0.0.0.0:29500"], "need --nnodes 2 or more"),
        (["--node-rank", "1"], "--node-rank 1 with --nnodes 1"),
        (["--nnodes", "2", "--rdzv-endpoint", "nohost"], "want HOST:PORT"),
        (["--nnodes", "2", "--rdzv-endpoint", "no-port-here"], "want HOST:PORT"),
        (
            ["--nnodes", "2", "--stages", "3", "--rdzv-endpoint", "127.0.0.1:1"],
            "not a multiple of --nnodes 2",
        ),
        (
            ["--nnodes", "2", "--framework", "jax", "--rdzv-endpoint", "127.0.0.1:1"],
            "drives torch, jax-dist, c only",
        ),
    ],
)
def test_multi_node_flags_are_checked_in_one_line(args, words, tmp_path):
    p = bench("pipeline", *args, "--out", str(tmp_path / "r"))
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], p.stderr


def outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return a.address
    return None


LONG_CASE = {  # a case that keeps its ranks up for a while
    "torch": ["--batch", "16", "--steps", "1"],
    "jax-dist": ["--batch", "512", "--steps", "3000"],
    "c": ["--batch", "512", "--steps", "10000"],
}


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "jax-dist", "c"])
def test_a_default_probe_listens_on_loopback_only(framework, tmp_path):
    """While a default (one-node) probe's ranks are up, every socket any of its processes listens
    on is bound to loopback, and a connection to those ports through another address of the
    machine is refused."""
    p = start(
        "pipeline",
        "--framework",
        framework,
        "--schedules",
        "gpipe",
        "--microbatches",
        "2",
        "--rounds",
        "1",
        *LONG_CASE[framework],
        "--case-timeout",
        "20",
        "--out",
        str(tmp_path / "r"),
        "--no-report",
        env={"BENCH_PIPELINE_FAULT": "gpipe:1:hang"},  # torch's ranks: one hangs
    )
    try:
        listening, deadline = set(), time.monotonic() + 120
        while time.monotonic() < deadline and p.poll() is None:
            if listening and deadline > time.monotonic() + 3:  # the first seen: 3 s more
                deadline = time.monotonic() + 3
            for proc in tree(p)[1:]:
                try:
                    conns = proc.net_connections("inet")
                except psutil.Error:
                    continue
                listening |= {c.laddr for c in conns if c.status == psutil.CONN_LISTEN}
            time.sleep(0.1)
        assert listening, "no process listened at all"
        assert all(a.ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1") for a in listening), listening
        outside = outside_address()
        if outside:
            for a in listening:
                with socket.socket() as s, pytest.raises(OSError):
                    s.settimeout(2)
                    s.connect((outside, a.port))
    finally:
        for proc in tree(p):
            proc.kill()
        p.communicate(timeout=60)


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
