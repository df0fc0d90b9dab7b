"""The pipeline probe's measurements against known truth: a rank whose stages, peers and sends take
known sleeps (real torch autograd, a stand-in for the process group), through rank 0's measuring
code and the row that pipeline.csv gets. Tolerances: a sleep overshoots by up to a few tenths of a
millisecond on a busy machine, so every figure is asked within 10% + 0.5 ms (the bubble within 0.05)
of what the sleeps make."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bench.pipeline.measure import Measurements
from bench.pipeline.rows import row

F0, B0 = 0.004, 0.008  # rank 0's stage 0: forward, backward of one microbatch (s)
F1, B1 = 0.010, 0.020  # the peer's stage 1: the busiest rank
SEND = 0.003  # one-way send of one activation
OWN_STEP, STEP = 0.010, 0.160  # rank 0's own work in a step, and when the peer finishes it
M = 4


def near(x, rel=0.1):
    return pytest.approx(x, rel=rel, abs=5e-4)


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
        self.step_began = None

    def barrier(self):
        if self.step_began is not None:  # the end-of-step barrier waits for the peer
            time.sleep(max(0.0, self.step_began + STEP - time.perf_counter()))
            self.step_began = None

    def send(self, buf, dst):
        time.sleep(SEND)

    def recv(self, buf, src):
        time.sleep(SEND)  # the peer's send back

    def broadcast(self, t, src):
        pass

    def all_reduce(self, t, op):
        pass

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
    return {"schedule": "hand-gpipe", "microbatches": M, "round": rnd, "status": "ok", "error": "",
            "grad_rel_err": 1e-6, "step_ns": fake.time_steps(fake.step, 2), "stage_f_s": f, "stage_b_s": b,
            "comm_s": fake.comm_time(M), "order": None}


@pytest.fixture(scope="module")
def measured():
    fake = FakeRank()
    results = [measured_result(fake, r) for r in range(2)]
    settings = SimpleNamespace(stages=2, config={"batch": 8}, model="mlp", grad_rtol=1e-2)
    return results, row(settings, "run", "hand-gpipe", M, results)


def test_the_step_is_timed_until_the_slowest_rank_is_done(measured):
    results, r = measured
    for res in results:
        assert np.median(res["step_ns"]) / 1e9 == near(STEP)  # not rank 0's own 10 ms
    assert r["step_s"] == near(STEP)
    assert r["ci_low_s"] <= r["step_s"] <= r["ci_high_s"]


def test_stage_times_are_each_stage_alone_and_compute_is_the_busiest_rank(measured):
    results, r = measured
    assert results[0]["stage_f_s"][0] == near(F0)
    assert results[0]["stage_b_s"][0] == near(B0)
    assert r["stage_f_s"] == near(F1) and r["stage_b_s"] == near(B1)
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
    fake = FakeRank()
    fake.hooks, fake.cfg = SimpleNamespace(reference_grads=lambda cfg: want), None

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
    for bad in range(3):  # first, transposed middle, last
        assert fake.gate(lambda: None, mine(bad)) == pytest.approx(0.1, rel=1e-6)
    assert fake.gate(lambda: None, mine(None), perturb=True) == pytest.approx(0.1, rel=1e-6)


SETTINGS = SimpleNamespace(stages=2, config={"batch": 8}, model="mlp", grad_rtol=1e-2)


def result(schedule="hand-1f1b", M=2, rnd=0, status="ok", step_ms=(10.0, 12.0, 11.0), grad=1e-6, error=""):
    return {"schedule": schedule, "microbatches": M, "round": rnd, "status": status, "error": error,
            "grad_rel_err": grad, "step_ns": [int(t * 1e6) for t in step_ms], "stage_f_s": {"0": 0.001, "1": 0.002},
            "stage_b_s": {"0": 0.003, "1": 0.002}, "comm_s": 0.0005, "order": None}


def test_a_row_from_its_rounds_by_hand():
    rs = [result(rnd=0, step_ms=(10.0, 12.0, 11.0)), result(rnd=1, step_ms=(13.0, 14.0, 12.0), grad=None)]
    r = row(SETTINGS, "run7", "hand-1f1b", 2, rs)
    assert (r["run_id"], r["model"], r["schedule"], r["stages"], r["virtual_stages"], r["microbatches"], r["batch"]) == \
        ("run7", "mlp", "hand-1f1b", 2, 1, 2, 8)
    assert r["status"] == "ok" and r["error"] == "" and r["rounds"] == 2
    assert r["theory_bubble"] == pytest.approx(1 / 3)  # (P - 1) / (M + P - 1)
    assert r["step_s"] == pytest.approx(np.sqrt(0.011 * 0.013))  # geometric mean of the rounds' medians
    assert r["ci_low_s"] < r["step_s"] < r["ci_high_s"]
    assert r["stage_f_s"] == 0.002 and r["stage_b_s"] == 0.003 and r["comm_s"] == 0.0005
    assert r["compute_s"] == pytest.approx(2 * 0.004)  # each rank 2 x (f + b) = 8 ms: the busiest is 8 ms
    assert r["grad_rel_err"] == 1e-6  # the round that ran the gate
    assert r["measured_bubble"] == pytest.approx(1 - 0.008 / r["step_s"])
    assert r["residual_s"] == pytest.approx(r["step_s"] - r["ideal_s"])


def test_interleaved_rows_count_two_virtual_stages_and_one_process_one_chunk():
    assert row(SETTINGS, "r", "interleaved-1f1b", 2, [])["virtual_stages"] == 2
    one = dict(result("one-process", 4), stage_f_s={"0": 0.001}, stage_b_s={"0": 0.002})
    r = row(SETTINGS, "r", "one-process", 4, [one])
    assert r["virtual_stages"] == 1 and r["compute_s"] == pytest.approx(0.003) and r["ideal_s"] == pytest.approx(0.003)
    accum = dict(one, schedule="one-process-accum")
    assert row(SETTINGS, "r", "one-process-accum", 4, [accum])["compute_s"] == pytest.approx(0.012)


def test_a_gradient_past_the_gate_makes_the_row_a_mismatch():
    r = row(SETTINGS, "r", "hand-1f1b", 2, [result(grad=0.05)])
    assert r["status"] == "mismatch" and r["error"] == "gradient rel. error 5.00e-02 > 1e-02"
    assert row(SETTINGS, "r", "hand-1f1b", 2, [result(grad=0.01)])["status"] == "ok"  # the limit is inclusive


def test_failed_and_unmeasured_rows_say_why_and_carry_no_numbers():
    bad = row(SETTINGS, "r", "gpipe", 2, [result("gpipe"), result("gpipe", rnd=1, status="timeout", error="rank 1: t")])
    assert bad["status"] == "timeout" and bad["error"] == "rank 1: t" and bad["rounds"] == 1
    pending = row(SETTINGS, "r", "gpipe", 2, [])
    assert pending["status"] == "pending" and pending["error"] == "" and pending["rounds"] == 0
    stopped = row(SETTINGS, "r", "gpipe", 2, [], unmeasured="interrupted")
    assert stopped["status"] == "interrupted" and "stopped" in stopped["error"]
    for r in (pending, stopped):
        assert all(math.isnan(r[k]) for k in ("step_s", "compute_s", "comm_s", "ideal_s", "measured_bubble"))
