"""The JAX and C pipelines' own measuring code against known truth: JAX stages that sleep known
times through JaxRank's stage timing, a step of known compute through its step timing, the C
program's action order per schedule, and the C gate's error over every tensor."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from bench import protocol
from bench.schedules import hand_order

F0, B0, F1, B1 = 0.030, 0.040, 0.030, 0.020  # seconds: each stage's forward and backward


def took(measured: dict, truth: dict) -> bool:
    """Each stage's measured seconds within [truth - 3 ms, truth + 12 ms]: a busy host only adds
    time (two pytest workers beside it gave +5.5 ms on a 40 ms vjp), and a backward that kept the
    forward's 30 ms would overshoot, as would a forward timed without waiting fall short."""
    return measured.keys() == truth.keys() and all(
        truth[s] - 3e-3 <= measured[s] <= truth[s] + 12e-3 for s in truth
    )


def _sleeping_stage(jax, f: float, b: float):
    """A stage whose forward sleeps f and whose backward sleeps b (host callbacks inside the jitted
    computation); the backward reads the forward's output, as a real stage's does."""

    def sleep(seconds):
        def call(x):
            time.sleep(seconds)
            return x

        return lambda x: jax.pure_callback(call, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

    @jax.custom_vjp
    def run(w, x):
        return sleep(f)(x * w[0])

    def forward(w, x):
        y = run(w, x)
        return y, (w, x, y)

    def backward(saved, g):
        w, x, y = saved
        g = sleep(b)(g + 0 * y)
        return (g * x).sum().reshape(w.shape), g * w[0]

    run.defvjp(forward, backward)
    return lambda p, x: run(p[0], x)


def _rank(jax):
    from bench.pipeline.jax_rank import JaxRank

    r = object.__new__(JaxRank)  # the measuring methods only, without a model or a process group
    r.jax, r.P, r.rank, r.spec = jax, 2, 0, SimpleNamespace(form="jax")
    r.cfg = SimpleNamespace(batch=4)
    r.params = [np.ones(1, np.float32), np.ones(1, np.float32)]
    r.x = r.y = np.ones((4, 3), np.float32)
    r.hooks = SimpleNamespace(boundary_shape=lambda cfg, b: (b, 3))
    r.loss = lambda out, y: ((out - y) ** 2).mean()
    return r


def test_jax_stage_times_separate_the_backward_from_the_forward():
    jax = pytest.importorskip("jax")
    stages = [(_sleeping_stage(jax, F0, B0), [0]), (_sleeping_stage(jax, F1, B1), [1])]
    f, b = _rank(jax).stage_times(stages, 2)
    assert took(f, {0: F0, 1: F1}), f
    assert took(b, {0: B0, 1: B1}), b  # the vjp's time less the forward's


def test_jax_step_times_wait_for_the_step_not_its_dispatch():
    """A jitted step of a few milliseconds of matmuls: JAX dispatches it asynchronously in
    microseconds, so a timing that does not wait for the result is a thousand times short."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    a = jnp.asarray(np.random.default_rng(0).standard_normal((800, 800), np.float32) / 30)
    fn = jax.jit(lambda w, a: (jax.lax.fori_loop(0, 3, lambda i, v: jnp.tanh(a @ v), w), w.sum()))
    pipe = SimpleNamespace(step=fn)
    state = [jnp.ones((800, 200)), a]
    jax.block_until_ready(fn(*state))
    alone = []
    for _ in range(5):
        t0 = time.perf_counter_ns()
        jax.block_until_ready(fn(*state))
        alone.append(time.perf_counter_ns() - t0)
    timed = _rank(jax).time_steps(pipe, state, 5)
    assert len(timed) == 5 and np.median(timed) > 0.5 * np.median(alone) > 1e5


def test_the_c_gate_keeps_the_largest_error_over_every_tensor(tmp_path):
    from bench.pipeline.c_rank import grad_error

    rng = np.random.default_rng(1)
    want = [rng.standard_normal(s).astype(np.float32) for s in ((4, 3), (3,), (5, 2))]
    for wrong in range(3):  # a 10% error in the first, a middle or the last tensor
        got = [w.copy() for w in want]
        got[wrong] *= 1.1
        np.concatenate([g.ravel() for g in got]).tofile(tmp_path / "g.bin")
        assert grad_error(tmp_path / "g.bin", want) == pytest.approx(0.1, rel=1e-3)


@pytest.mark.slow
def test_the_c_pipeline_runs_each_schedules_own_order():
    from bench.pipeline import c_rank, cprog

    if cprog.unavailable_reason():
        pytest.skip(cprog.unavailable_reason())
    M = 4
    cases = tuple(protocol.PipeCase(name, M, 0, False, 2) for name in ("gpipe", "1f1b"))
    spec = protocol.RankSpec(
        0, 2, "mlp", {"batch": 8, "width": 16, "depth": 2}, "cpu", 60.0, "", cases, form="c"
    )
    got = []
    assert c_rank.run(spec, got.append) == 0
    assert [r.schedule for r in got] == ["gpipe", "1f1b"] and all(r.status == "ok" for r in got)
    for r in got:
        for rank in (0, 1):
            want = [f"{rank}{kind}{m}" for kind, m in hand_order(r.schedule, rank, 2, M)]
            assert r.order[str(rank)] == want, (r.schedule, rank)
