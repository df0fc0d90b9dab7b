"""The pytest-benchmark route: the same registry, sizes, gate and timing rules as the CLI, run
in the pytest process (one framework import per session, as pytest-benchmark users expect)."""

from __future__ import annotations

import os
import time

from bench import envinfo
from bench.devices import row_device
from bench.sizes import parse_sizes
from models.registry import for_model, get, model_module

GATE_STEPS = 5
MIN_ROUNDS, MAX_ROUNDS = 10, 5000


def pin_threads(threads: int, device: str = "cpu") -> None:
    """CPU affinity and the BLAS/OpenMP variables, before a framework is imported."""
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    os.sched_setaffinity(0, cpus)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    if device == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")


def cases(impl_text: str, sizes_text: str, model: str = "mlp"):
    allowed = [i.name for i in for_model(model)]
    names = allowed if impl_text == "all" else impl_text.split(",")
    bad = [n for n in names if n not in allowed]
    if bad:
        raise ValueError(f"unknown {model} implementation {', '.join(bad)}; allowed: {', '.join(allowed)}, all")
    return [(get(model, n), z) for z in parse_sizes(sizes_text, model) for n in names]


def apply_threads(framework: str, threads: int, tf32: bool = False):
    """The framework's own thread knob (and TF32 setting), as the worker does; returns what to
    keep alive."""
    from threadpoolctl import threadpool_limits

    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        torch.set_float32_matmul_precision("high" if tf32 else "highest")
    elif framework == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "tensorfloat32" if tf32 else "highest")
    elif framework == "c":
        from models import mlp_c

        mlp_c.load().mlp_set_threads(threads)
    return threadpool_limits(limits=threads)


def bench_case(benchmark, impl, size, threads: int, budget_s: float, device: str = "cpu", tf32: bool = False) -> None:
    """Build, time the first call, gate, then pytest-benchmark's pedantic mode on step.call."""
    import pytest

    why = impl.unavailable_reason()
    dev = row_device(impl.devices, device)
    if not why and dev not in impl.devices:
        why = f"runs on {', '.join(impl.devices)} only (--device)"
    if why:
        pytest.skip(why)
    cfg = size.config()
    mod = model_module(size.model)
    limits = apply_threads(impl.framework, threads, tf32)
    builder = impl.load()
    kw = {"device": dev} if impl.framework == "torch" else {}
    step = builder(cfg, size.scan_k(), **kw) if impl.fused else builder(cfg, **kw)
    t0 = time.perf_counter()
    step.call()
    first_call_s = time.perf_counter() - t0
    info = {"loss_rel_err": None, "update_rel_err": None}
    if getattr(step, "gate", True):
        step.reset()
        loss_err, update_err, fail = mod.compare(cfg, step.losses(GATE_STEPS), step.params(), mod.reference(cfg, GATE_STEPS))
        info = {"loss_rel_err": loss_err, "update_rel_err": update_err}
        if fail:
            pytest.fail(f"{impl.name} {size.label} failed the equivalence gate: {fail}")
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
    benchmark.extra_info.update({
        "impl": impl.name, "model": impl.model, "framework": impl.framework, "mode": impl.mode,
        "device": dev, "tf32": tf32, "size": size.label, "sweep": size.sweep, "dims": dict(size.dims), **mod.describe(cfg),
        "flops_per_step": mod.flops_per_step(cfg),
        "steps_per_call": k, "time_unit": "seconds per training step", "threads": threads,
        "first_call_s": first_call_s, "ops_per_step": step.count_ops(), **info,
        "versions": envinfo.versions(),
    })
    benchmark.pedantic(step.call, rounds=rounds, iterations=1, warmup_rounds=max(2, rounds // 20))
    del limits
