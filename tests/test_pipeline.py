"""`bench pipeline`: schedules on torch.distributed (gloo, loopback), the gate, the simulation and
theory, bad input, and a rank that crashes or hangs."""

import time

import pandas as pd
import psutil
import pytest
from pipeline_procs import bench, mine, start

from bench.schedules import SCHEDULES, hand_order, simulate
from bench.schema import PIPELINE_COLUMNS

pytest.importorskip("torch")


def test_theory_bubbles_by_hand():
    assert SCHEDULES["gpipe"].theory_bubble(2, 2) == pytest.approx(1 / 3)
    assert SCHEDULES["1f1b"].theory_bubble(4, 8) == pytest.approx(3 / 11)
    assert SCHEDULES["interleaved-1f1b"].theory_bubble(2, 4) == pytest.approx(1 / 9)  # v = 2
    assert SCHEDULES["zbv"].theory_bubble(2, 4) == 0 and SCHEDULES["zbv"].theory_bubble(
        2, 2
    ) == pytest.approx(1 / 3)
    assert SCHEDULES["one-process"].theory_bubble(2, 1) == 0


def test_simulated_gpipe_is_the_textbook_makespan():
    """Equal stages, free sends: GPipe takes (M + P - 1) forwards and as many backwards."""
    P, M, f, b = 3, 4, 1.0, 2.0
    orders = {r: [(r, k, m) for k, m in hand_order("gpipe", r, P, M)] for r in range(P)}
    t = simulate(
        orders,
        P,
        dict.fromkeys(range(P), f),
        dict.fromkeys(range(P), b),
        0.0,
        {r: r for r in range(P)},
    )
    assert t == pytest.approx((M + P - 1) * (f + b))
    t1 = simulate(
        {r: [(r, k, m) for k, m in hand_order("1f1b", r, P, M)] for r in range(P)},
        P,
        dict.fromkeys(range(P), f),
        dict.fromkeys(range(P), b),
        0.0,
        {r: r for r in range(P)},
    )
    assert t1 == pytest.approx(t)  # 1F1B saves memory, not time, when stages are equal
    slow = simulate(
        orders,
        P,
        dict.fromkeys(range(P), f),
        dict.fromkeys(range(P), b),
        0.5,
        {r: r for r in range(P)},
    )
    assert slow > t  # sends between ranks add to the critical path


def test_1f1b_order_warms_up_then_alternates():
    assert hand_order("1f1b", 0, 2, 3) == [
        ("F", 0),
        ("F", 1),
        ("B", 0),
        ("F", 2),
        ("B", 1),
        ("B", 2),
    ]
    assert hand_order("1f1b", 1, 2, 3) == [
        ("F", 0),
        ("B", 0),
        ("F", 1),
        ("B", 1),
        ("F", 2),
        ("B", 2),
    ]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipe") / "run"
    p = bench(
        "pipeline",
        "--framework",
        "torch",
        "--schedules",
        "gpipe,1f1b,zbv,hand-1f1b,one-process-accum",
        "--microbatches",
        "4",
        "--rounds",
        "2",
        "--steps",
        "2",
        "--batch",
        "32",
        "--out",
        str(out),
    )
    return out, p


@pytest.mark.slow
def test_schedules_run_and_pass_the_gate(small_run):
    out, p = small_run
    assert p.returncode == 0, p.stderr[-3000:]
    df = pd.read_csv(out / "pipeline.csv")
    assert list(df.columns) == list(PIPELINE_COLUMNS)
    assert set(df["schedule"]) == {"gpipe", "1f1b", "zbv", "hand-1f1b", "one-process-accum"}
    assert (df["status"] == "ok").all(), df[["schedule", "status", "error"]]
    assert (
        df["grad_rel_err"] < 1e-5
    ).all()  # every schedule's gradients are the float64 reference's
    assert (df["rounds"] == 2).all() and (df["ci_low_s"] <= df["step_s"]).all()
    assert (df.loc[df["schedule"] == "zbv", "virtual_stages"] == 2).all()
    pipes = df[df["schedule"] != "one-process-accum"]
    assert (pipes["comm_s"] > 0).all() and pipes["ideal_s"].notna().all()
    assert list(df["residual_s"]) == pytest.approx(list(df["step_s"] - df["ideal_s"]))
    samples = pd.read_csv(out / "pipeline_samples.csv")
    assert len(samples) == 2 * 2 * len(df)  # 2 rounds x 2 steps per case
    assert (out / "report.md").is_file() and "![pipeline](pipeline.png)" in (
        out / "report.md"
    ).read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, words",
    [
        (["--stages", "0"], "--stages 0"),
        (["--schedules", "1f1b", "--microbatches", "1"], "1f1b needs at least 2 microbatches"),
        (["--stages", "9"], "the mlp has 8 to split"),
        (["--schedules", "gpipe", "--microbatches", "3"], "must divide the batch"),
        (["--schedules", "nope"], "unknown schedule nope"),
        (["--device", "cuda"], "a single GPU is not a pipeline"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, words, tmp_path):
    p = bench("pipeline", *args, "--out", str(tmp_path / "r"))
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], p.stderr
    assert not (tmp_path / "r").exists()


def no_ranks_left() -> bool:
    """No rank process of any framework left: torch's, JAX's, C's launcher, mpiexec's program."""
    return not [
        p
        for p in psutil.process_iter(["cmdline"])
        if (
            "bench.pipeline." in " ".join(p.info["cmdline"] or [])
            or any(str(a).endswith(("/mlp_pipe", "/gpt_pipe")) for a in p.info["cmdline"] or [])
        )
        and mine(p)
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault, status", [("crash", "crashed"), ("hang", "timeout"), ("grad", "mismatch")]
)
def test_a_failing_rank_fails_its_case_only_and_leaves_no_process(fault, status, tmp_path):
    out = tmp_path / "run"
    t0 = time.monotonic()
    p = bench(
        "pipeline",
        "--framework",
        "torch",
        "--schedules",
        "gpipe,hand-gpipe",
        "--microbatches",
        "2",
        "--rounds",
        "1",
        "--steps",
        "1",
        "--batch",
        "16",
        "--case-timeout",
        "5",
        "--out",
        str(out),
        "--no-report",
        env={"BENCH_PIPELINE_FAULT": f"gpipe:1:{fault}"},
    )
    assert p.returncode == 1, p.stderr[-2000:]
    df = pd.read_csv(out / "pipeline.csv", keep_default_na=False).set_index("schedule")
    assert df.loc["gpipe", "status"] == status, df.loc["gpipe", "error"]
    words = {"crash": "group killed", "hang": "time", "grad": "gradient rel. error 1.0"}[fault]
    assert words in df.loc["gpipe", "error"].lower()  # grad: one tensor 10% off on stage 1 only
    assert df.loc["hand-gpipe", "status"] == "ok"  # the next case ran in a fresh group
    assert no_ranks_left()
    assert time.monotonic() - t0 < 120


def test_pipeline_report_regenerates_and_refuses_damage(small_run, tmp_path, capsys):
    import shutil

    from bench.commands import main

    out, _ = small_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "report.md").unlink()
    assert main(["report", str(copy)]) == 0 and (copy / "report.md").is_file()
    text = (copy / "pipeline.csv").read_text()
    cut = len(text) // 2 + (text[len(text) // 2 - 1] == "\n")  # inside a line, never just after one
    (copy / "pipeline.csv").write_text(text[:cut])
    capsys.readouterr()
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pipeline.csv" in err


@pytest.mark.slow
def test_an_interrupted_probe_resumes_with_no_case_lost_or_measured_twice(tmp_path):
    import json
    import signal

    out = tmp_path / "run"
    args = [
        "pipeline",
        "--framework",
        "torch",
        "--schedules",
        "gpipe,one-process",
        "--microbatches",
        "2",
        "--rounds",
        "2",
        "--steps",
        "2",
        "--batch",
        "16",
        "--out",
        str(out),
        "--no-report",
    ]
    p = start(*args)
    results = out / "pipeline_results.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (
        results.is_file() and results.read_text().count("\n") >= 1
    ):
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-2000:]
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    before = [json.loads(line) for line in results.read_text().splitlines()]
    assert 1 <= len(before) < 4 and no_ranks_left()
    table = pd.read_csv(out / "pipeline.csv", keep_default_na=False)
    assert set(table["status"]) <= {"ok", "interrupted"}
    # settings come from run.json
    assert bench("pipeline", "--resume", str(out), "--rounds", "3").returncode == 2
    done = bench("pipeline", "--resume", str(out), "--no-report")
    assert done.returncode == 0, done.stderr[-2000:]
    after = [json.loads(line) for line in results.read_text().splitlines()]
    keys = [(r["schedule"], r["microbatches"], r["round"]) for r in after]
    assert len(keys) == len(set(keys)) == 4  # 2 cases x 2 rounds, none lost, none twice
    assert after[: len(before)] == before  # what was measured before stays as it was
    table = pd.read_csv(out / "pipeline.csv")
    assert (table["status"] == "ok").all() and (table["rounds"] == 2).all()
    samples = pd.read_csv(out / "pipeline_samples.csv")
    assert (
        len(samples) == 4 * 2
        and not samples.duplicated(["schedule", "microbatches", "round", "i"]).any()
    )
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    again = bench("pipeline", "--resume", str(out))
    assert again.returncode == 2 and "complete; nothing to resume" in again.stderr
