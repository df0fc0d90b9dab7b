"""The pipeline probe's measurements against known truth: a rank whose stages, peers and sends take
known sleeps (real torch autograd, a stand-in for the process group), through rank 0's measuring
code and the row that pipeline.csv gets. Tolerances: a sleep never undershoots and overshoots by up to
a millisecond or two on a busy machine (a mutation run, a parallel test), so every figure is asked
within 10% + 2 ms (the bubble within 0.05) of what the sleeps make; every bug it guards against moves
a figure by more (a round trip: 6 ms for 3; rank 0's own step: 10 ms for 160)."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bench.pipeline.measure import Measurements
from bench.pipeline.rows import row
from bench.schema import PIPELINE_COLUMNS

F0, B0 = 0.004, 0.008  # rank 0's stage 0: forward, backward of one microbatch (s)
F1, B1 = 0.010, 0.020  # the peer's stage 1: the busiest rank
SEND = 0.003  # one-way send of one activation
OWN_STEP, STEP = 0.010, 0.160  # rank 0's own work in a step, and when the peer finishes it
M = 4


def near(x, rel=0.1):
    return pytest.approx(x, rel=rel, abs=2e-3)


def backward_alone(measured: float, b: float, f: float) -> bool:
    """A backward's time without its forward's: at least b (less 2 ms of clock), and below b + f,
    where a backward that kept the forward's sleep would start (sleeps only overshoot, so a busy
    host, which added 3.5 ms to stage 0's 8 ms once, moves it up but not to there)."""
    return b - 2e-3 <= measured < b + f


class Sleep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, f, b):
        ctx.b = b
        time.sleep(f)
        return x * 1.0

    @staticmethod
    def backward(ctx, g):
        time.sleep(ctx.b)
        return g, None, None


class Stage(torch.nn.Module):
    def __init__(self, f, b):
        super().__init__()
        self.w, self.f, self.b = torch.nn.Parameter(torch.ones(3)), f, b

    def forward(self, x):
        return Sleep.apply(x * self.w, self.f, self.b)


class FakeGroup:
    """Rank 0's view of a 2-rank gloo group: the peer finishes every step at STEP after it began,
    answers a send after SEND, and reports its stage-1 times."""

    ReduceOp = SimpleNamespace(MAX="max")

    def __init__(self):
        self.step_began, self.calls, self.bcast = None, [], None

    def barrier(self):
        if self.step_began is not None:  # the end-of-step barrier waits for the peer
            time.sleep(max(0.0, self.step_began + STEP - time.perf_counter()))
            self.step_began = None

    def send(self, buf, dst):
        self.calls.append(("send", tuple(buf.shape), dst))
        time.sleep(SEND)

    def recv(self, buf, src):
        self.calls.append(("recv", tuple(buf.shape), src))
        time.sleep(SEND)  # the peer's send back

    def broadcast(self, t, src):
        assert src == 0
        if self.bcast is not None:  # rank 0's value, as another rank receives it
            t[0] = self.bcast

    peer_err = 0.0  # the gate's error on the peer

    def all_reduce(self, t, op):
        assert op == self.ReduceOp.MAX
        t[0] = max(float(t[0]), self.peer_err)

    def all_gather_object(self, out, obj):
        out[0], out[1] = obj, ({1: F1}, {1: B1})


class FakeRank(Measurements):
    def __init__(self):
        self.torch, self.dist, self.rank, self.P, self.device = torch, FakeGroup(), 0, 2, "cpu"
        self.x, self.y = torch.ones(8, 3), torch.zeros(8, 3)

    def boundary(self, x_chunk):
        return tuple(x_chunk.shape)

    def step(self):
        self.dist.step_began = time.perf_counter()
        time.sleep(OWN_STEP)


def measured_result(fake, rnd):
    from bench.schedules import SCHEDULES

    f, b = fake.stage_times(SCHEDULES["hand-gpipe"], [(0, Stage(F0, B0), [])], 2, M)
    return {
        "schedule": "hand-gpipe",
        "microbatches": M,
        "round": rnd,
        "status": "ok",
        "error": "",
        "grad_rel_err": 1e-6,
        "step_ns": fake.time_steps(fake.step, 2),
        "stage_f_s": f,
        "stage_b_s": b,
        "comm_s": fake.comm_time(M),
        "order": None,
    }


@pytest.fixture(scope="module")
def measured():
    fake = FakeRank()
    results = [measured_result(fake, r) for r in range(2)]
    settings = SimpleNamespace(
        stages=2, nnodes=1, config={"batch": 8}, model="mlp", grad_rtol=1e-2, rounds=8
    )
    return results, row(settings, "torch", "hand-gpipe", M, results)


def test_the_step_is_timed_until_the_slowest_rank_is_done(measured):
    results, r = measured
    for res in results:
        assert np.median(res["step_ns"]) / 1e9 == near(STEP)  # not rank 0's own 10 ms
    assert r["step_s"] == near(STEP)
    assert r["ci_low_s"] <= r["step_s"] <= r["ci_high_s"]


def test_stage_times_are_each_stage_alone_and_compute_is_the_busiest_rank(measured):
    results, r = measured
    assert results[0]["stage_f_s"][0] == near(F0)
    assert backward_alone(results[0]["stage_b_s"][0], B0, F0), results[0]["stage_b_s"]
    assert r["stage_f_s"] == near(F1) and backward_alone(r["stage_b_s"], B1, F1), r["stage_b_s"]
    assert r["compute_s"] == near(M * (F1 + B1))  # 120 ms, not rank 0's 48 ms


def test_the_send_time_is_one_way(measured):
    results, r = measured
    assert r["comm_s"] == near(SEND)  # half the 6 ms round trip


def test_ideal_bubble_and_residual_follow_from_the_sleeps(measured):
    _, r = measured
    # GPipe by hand, M = 4, comm 3 ms: stage 1's forwards run 7-47 ms, its backwards 47-127 ms; stage
    # 0's last backward waits for stage 1's (127 + 3) and takes 8 ms: 138 ms.
    assert r["ideal_s"] == near(0.138)
    assert r["measured_bubble"] == pytest.approx(1 - M * (F1 + B1) / STEP, abs=0.05)
    assert r["residual_s"] == pytest.approx(STEP - 0.138, abs=0.01)
    assert r["status"] == "ok" and r["rounds"] == 2


def test_the_gate_sees_a_wrong_gradient_in_any_tensor_of_the_stage():
    rng = np.random.default_rng(0)
    want = {i: rng.standard_normal((3, 4)) for i in range(3)}
    want[2] *= 1e-3  # a small tensor: its error is relative to its own size
    fake = FakeRank()
    cfg = object()
    fake.hooks, fake.cfg = (
        SimpleNamespace(reference_grads=lambda c: want if c is cfg else None),
        cfg,
    )

    def mine(bad: int | None):
        pmap = []
        for i in range(3):
            transposed = i == 1
            g = want[i].T.copy() if transposed else want[i].copy()
            if i == bad:
                g *= 1.1
            p = torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64))
            p.grad = torch.from_numpy(g)
            pmap.append((i, p, transposed))
        return [(0, None, pmap)]

    assert fake.gate(lambda: None, mine(None)) < 1e-12
    for bad in range(3):  # first, transposed middle, last (small)
        assert fake.gate(lambda: None, mine(bad)) == pytest.approx(0.1, rel=1e-6)
    perturbed = mine(None)
    assert fake.gate(lambda: None, perturbed, perturb=True) == pytest.approx(0.1, rel=1e-6)
    # the first tensor
    np.testing.assert_allclose(perturbed[0][2][0][1].grad.numpy(), 1.1 * want[0])
    np.testing.assert_allclose(perturbed[0][2][1][1].grad.numpy(), want[1].T)
    fake.dist.peer_err = 0.3  # the largest error over the ranks
    assert fake.gate(lambda: None, mine(None)) == pytest.approx(0.3)


SETTINGS = SimpleNamespace(
    stages=2, nnodes=1, config={"batch": 8}, model="mlp", grad_rtol=1e-2, rounds=8
)


def result(
    schedule="hand-1f1b", M=2, rnd=0, status="ok", step_ms=(10.0, 12.0, 11.0), grad=1e-6, error=""
):
    return {
        "schedule": schedule,
        "microbatches": M,
        "round": rnd,
        "status": status,
        "error": error,
        "grad_rel_err": grad,
        "step_ns": [int(t * 1e6) for t in step_ms],
        "stage_f_s": {"0": 0.001, "1": 0.002},
        "stage_b_s": {"0": 0.003, "1": 0.002},
        "comm_s": 0.0005,
        "order": None,
    }


def test_a_row_from_its_rounds_by_hand():
    rs = [
        result(rnd=0, step_ms=(10.0, 12.0, 11.0)),
        result(rnd=1, step_ms=(13.0, 14.0, 12.0), grad=None),
    ]
    r = row(SETTINGS, "torch", "hand-1f1b", 2, rs)
    assert (
        r["model"],
        r["schedule"],
        r["stages"],
        r["virtual_stages"],
        r["microbatches"],
        r["batch"],
    ) == ("mlp", "hand-1f1b", 2, 1, 2, 8)
    # every column but the file's own two: its version and its run's id (the probe's writer)
    assert isinstance(r["virtual_stages"], int) and set(r) | {"schema_version", "run_id"} == set(
        PIPELINE_COLUMNS
    )
    assert r["status"] == "ok" and r["error"] == "" and r["rounds"] == 2
    assert r["theory_bubble"] == pytest.approx(1 / 3)  # (P - 1) / (M + P - 1)
    # geometric mean of the rounds' medians
    assert r["step_s"] == pytest.approx(np.sqrt(0.011 * 0.013))
    assert r["ci_low_s"] < r["step_s"] < r["ci_high_s"]
    assert r["stage_f_s"] == 0.002 and r["stage_b_s"] == 0.003 and r["comm_s"] == 0.0005
    # each rank 2 x (f + b) = 8 ms: the busiest is 8 ms
    assert r["compute_s"] == pytest.approx(2 * 0.004)
    assert r["grad_rel_err"] == 1e-6  # the round that ran the gate
    assert r["measured_bubble"] == pytest.approx(1 - 0.008 / r["step_s"])
    assert r["residual_s"] == pytest.approx(r["step_s"] - r["ideal_s"])


def test_interleaved_rows_count_two_virtual_stages_and_one_process_one_chunk():
    inter = row(SETTINGS, "torch", "interleaved-1f1b", 2, [])["virtual_stages"]
    assert inter == 2 and isinstance(inter, int)
    one = dict(result("one-process", 4), stage_f_s={"0": 0.001}, stage_b_s={"0": 0.002})
    r = row(SETTINGS, "torch", "one-process", 4, [one])
    assert (
        r["virtual_stages"] == 1
        and r["compute_s"] == pytest.approx(0.003)
        and r["ideal_s"] == pytest.approx(0.003)
    )
    accum = dict(one, schedule="one-process-accum")
    assert row(SETTINGS, "torch", "one-process-accum", 4, [accum])["compute_s"] == pytest.approx(
        0.012
    )


def test_a_gradient_past_the_gate_makes_the_row_a_mismatch():
    r = row(SETTINGS, "torch", "hand-1f1b", 2, [result(grad=0.05)])
    assert r["status"] == "mismatch" and r["error"] == "gradient rel. error 5.00e-02 > 1e-02"
    # the limit is inclusive
    assert row(SETTINGS, "torch", "hand-1f1b", 2, [result(grad=0.01)])["status"] == "ok"


def test_failed_and_unmeasured_rows_say_why_and_carry_no_numbers():
    bad = row(
        SETTINGS,
        "torch",
        "gpipe",
        2,
        [result("gpipe"), result("gpipe", rnd=1, status="timeout", error="rank 1: t")],
    )
    assert bad["status"] == "timeout" and bad["error"] == "rank 1: t" and bad["rounds"] == 1
    pending = row(SETTINGS, "torch", "gpipe", 2, [])
    assert pending["status"] == "pending" and pending["error"] == "" and pending["rounds"] == 0
    assert set(pending) | {"schema_version", "run_id"} == set(PIPELINE_COLUMNS)
    stopped = row(SETTINGS, "torch", "gpipe", 2, [], unmeasured="interrupted")
    assert stopped["status"] == "interrupted" and "stopped" in stopped["error"]
    numbers = (
        "step_s",
        "ci_low_s",
        "ci_high_s",
        "stage_f_s",
        "stage_b_s",
        "compute_s",
        "comm_s",
        "ideal_s",
        "measured_bubble",
        "residual_s",
        "grad_rel_err",
    )
    for r in (pending, stopped):
        assert all(math.isnan(r[k]) for k in numbers)


class RowsStage(torch.nn.Module):
    """A stage whose forward and backward take a known time per row of its input, and which records
    what it was given."""

    def __init__(self, f_row, b_row):
        super().__init__()
        self.w, self.f_row, self.b_row, self.seen = (
            torch.nn.Parameter(torch.ones(3)),
            f_row,
            b_row,
            [],
        )

    def forward(self, x):
        self.seen.append((x.detach().clone(), x.requires_grad))
        return Sleep.apply(x * self.w, self.f_row * x.shape[0], self.b_row * x.shape[0])


@pytest.mark.parametrize("schedule, rows", [("hand-gpipe", 2), ("one-process", 8)])
def test_stage_times_time_one_microbatch_of_each_stage_with_its_own_input(schedule, rows):
    """x has 8 rows: a pipeline's microbatch (M = 4) has 2, one process's step (one chunk) all 8.
    Stage 0 gets the first chunk of x, a later stage a fresh input that requires grad, the last
    stage's output goes through the loss with the first chunk of y; grads are cleared after."""
    from bench.schedules import SCHEDULES

    fake = FakeRank()
    fake.x = torch.arange(24.0).reshape(8, 3)
    fake.y = torch.arange(100.0, 124.0).reshape(8, 3)
    targets = []

    def loss(out, y):
        targets.append(y.clone())
        return out.sum()

    fake.loss = loss
    first, last = RowsStage(0.001, 0.002), RowsStage(0.0015, 0.0005)
    fake.dist.all_gather_object = lambda out, obj: out.__setitem__(slice(None), [obj, ({}, {})])
    f, b = fake.stage_times(SCHEDULES[schedule], [(0, first, []), (3, last, [])], 4, 4)
    assert f[0] == near(0.001 * rows) and b[0] == near(0.002 * rows)
    assert f[3] == near(0.0015 * rows) and b[3] == near(0.0005 * rows)
    assert len(first.seen) == len(last.seen) == 6  # 1 warm-up + 5 timed
    for x, grad in first.seen:
        assert torch.equal(x, fake.x[:rows]) and not grad
    for x, grad in last.seen:
        assert x.shape == (rows, 3) and grad and not torch.equal(x, fake.x[:rows])
    assert len(targets) == 6 and all(torch.equal(t, fake.y[:rows]) for t in targets)
    assert first.w.grad is None and last.w.grad is None


@pytest.mark.parametrize(
    "rank, want",
    [
        (0, [("send", (2, 3), 1), ("recv", (2, 3), 1)]),
        (1, [("recv", (2, 3), 0), ("send", (2, 3), 0)]),
        (2, []),
    ],
)
def test_the_send_is_one_microbatch_activation_between_ranks_0_and_1(rank, want):
    """x has 8 rows, M = 4: the activation of one microbatch is (2, 3) here (boundary = its shape).
    Rank 0 sends to 1 and waits for the reply, rank 1 answers, a third rank only waits: 11 times
    (one untimed); every rank returns rank 0's figure."""
    fake = FakeRank()
    fake.rank, fake.P, fake.x = rank, 3, torch.zeros(8, 3)
    fake.dist.bcast = None if rank == 0 else 0.004
    got = fake.comm_time(4)
    assert fake.dist.calls == want * 11
    assert got == (near(SEND) if rank == 0 else pytest.approx(0.004))


def test_compute_is_the_busiest_rank_whatever_the_layout():
    """P = 3, one stage per rank, unequal: rank 2 is busiest. P = 2 with a V layout (stages 0, 3 on
    rank 0; 1, 2 on rank 1): each rank sums its two stages. M = 2 microbatches each."""
    three = SimpleNamespace(**{**vars(SETTINGS), "stages": 3})
    r3 = dict(
        result("hand-gpipe"),
        stage_f_s={"0": 0.001, "1": 0.001, "2": 0.004},
        stage_b_s={"0": 0.001, "1": 0.001, "2": 0.004},
    )
    assert row(three, "torch", "hand-gpipe", 2, [r3])["compute_s"] == pytest.approx(2 * 0.008)
    v = dict(
        result("zbv"),
        stage_f_s={"0": 0.001, "1": 0.002, "2": 0.003, "3": 0.004},
        stage_b_s={"0": 0.001, "1": 0.002, "2": 0.003, "3": 0.004},
        order=None,
    )
    assert row(SETTINGS, "torch", "zbv", 2, [v])["compute_s"] == pytest.approx(
        2 * (0.002 + 0.008)
    )  # rank 0: 10 ms


def test_a_row_whose_rounds_never_ran_the_gate_is_not_ok():
    r = row(SETTINGS, "torch", "hand-1f1b", 2, [result(grad=None)])
    assert r["status"] == "mismatch" and math.isnan(r["grad_rel_err"]) and "nan" in r["error"]
