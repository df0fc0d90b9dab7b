"""`bench pipeline` across machines, tried on loopback: two nodes give a gated result for torch,
jax-dist and c; a node that dies fails its case and leaves no process; a node alone exits 2 in
one line; one rendezvous per group; sends across nodes counted by hand; a default probe listens
on loopback only."""

import os
import socket
import time

import pandas as pd
import psutil
import pytest
from pipeline_procs import bench, free_port, mine, start, tree

pytest.importorskip("torch")


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
