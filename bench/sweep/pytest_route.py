"""The pytest-benchmark route: the same registry, sizes, case preparation (bench/prepare.py) and
timing rules as the CLI, run in the pytest process (one framework import per session, as
pytest-benchmark users expect)."""

from __future__ import annotations

import time

from bench import envinfo, frameworks
from bench.sizes import parse_sizes
from bench.sweep import prepare
from models.registry import model_module, select

MIN_ROUNDS, MAX_ROUNDS = 10, 5000


def cases(impl_text: str, sizes_text: str, model: str = "mlp"):
    """(implementation, size) pairs; ValueError naming a bad name or size."""
    impls = select(model, impl_text)
    return [(i, z) for z in parse_sizes(sizes_text, model) for i in impls]


def bench_case(
    benchmark, impl, size, threads: int, budget_s: float, device: str = "cpu", tf32: bool = False
) -> None:  # pragma: no mutate (bench/test_benchmarks.py passes every argument)
    """Build, time the first call, gate, then pytest-benchmark's pedantic mode on step.call; the
    step's op count and description after it."""
    import pytest

    dev = frameworks.run_device(impl, device)
    why = frameworks.impl_unavailable(impl, device)
    if why:
        pytest.skip(why)
    cfg = size.config()
    mod = model_module(size.model)
    _, limits = frameworks.setup(impl.framework, threads, dev, tf32)
    built = prepare.build(impl, cfg, size.steps_per_call(), dev)
    step = built.step
    info = {"loss_rel_err": None, "update_rel_err": None}
    if step.gate:
        g = prepare.gate(step, size.model, cfg)
        info = {"loss_rel_err": g.loss_rel_err, "update_rel_err": g.update_rel_err}
        if g.status != "ok":
            pytest.fail(f"{impl.name} {size.label} failed the equivalence gate: {g.error}")
    # rounds from a quick estimate of one call, like the CLI's time budget
    t0 = time.perf_counter()
    for _ in range(3):
        step.call()
    per_call = (time.perf_counter() - t0) / 3
    rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, budget_s / max(per_call, 1e-9))))
    k = step.steps_per_call
    if k > 1:  # fused: scale the timer so every statistic is per training step, not per call
        clock = benchmark._timer
        benchmark._timer = lambda: clock() / k
    benchmark.extra_info.update(
        {
            "impl": impl.name,
            "model": impl.model,
            "framework": impl.framework,
            "mode": impl.mode,
            "device": dev,
            "tf32": tf32,
            "size": size.label,
            "sweep": size.sweep,
            "dims": dict(size.dims),
            **mod.describe(cfg),
            "flops_per_step": mod.flops_per_step(cfg),
            "steps_per_call": k,
            "time_unit": "seconds per training step",
            "threads": threads,
            "first_call_s": built.first_call_s,
            **info,
            "versions": envinfo.versions(),
        }
    )
    benchmark.pedantic(step.call, rounds=rounds, iterations=1, warmup_rounds=max(2, rounds // 20))
    prepare.describe_step(built)  # after the timing: torch's resets Dynamo
    benchmark.extra_info.update(
        {"ops_per_step": built.ops_per_step, "op_unit": built.info.get("op_unit", "")}
    )
    del limits
