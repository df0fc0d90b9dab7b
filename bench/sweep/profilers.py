"""Where one step's time goes, with each framework's own profiler (`python -m bench profile`).

Every profiler runs `steps` calls of a built, warmed-up Step and returns rows
{entry, calls_per_step, us_per_step, share}: per training step (a fused call's K steps divided
out), share of the profiled total. Imported inside the profiling process only.
"""

from __future__ import annotations

import time


def _rows(entries: dict[str, tuple[float, float]], per: int) -> list[dict]:
    """entries: name -> (calls, seconds) over all profiled calls; per: training steps profiled."""
    total = sum(s for _, s in entries.values()) or 1.0
    rows = [
        {
            "entry": name,
            "calls_per_step": calls / per,
            "us_per_step": 1e6 * secs / per,
            "share": secs / total,
        }
        for name, (calls, secs) in entries.items()
    ]
    return sorted(rows, key=lambda r: -r["us_per_step"])


def python_profile(step, steps: int) -> list[dict]:
    """cProfile (NumPy, C through ctypes, the control): own time of each function."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        step.call()
    prof.disable()
    entries = {}
    for (file, line, func), (_, calls, tottime, _, _) in pstats.Stats(prof).stats.items():
        if func in ("disable", "enable") or "_lsprof" in file:
            continue
        where = (
            func
            if file == "~"
            else f"{file.rsplit('/', 2)[-1] if '/' in file else file}:{line}({func})"
        )
        entries[where] = (calls, tottime)
    return _rows(entries, steps * step.steps_per_call)


def torch_profile(step, steps: int) -> list[dict]:
    """torch.profiler: self CPU time per operator (and CUDA time on a GPU run)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        for _ in range(steps):
            step.call()
    entries = {
        e.key: (e.count, (e.self_cpu_time_total + getattr(e, "self_device_time_total", 0)) / 1e6)
        for e in prof.key_averages()
    }
    return _rows(entries, steps * step.steps_per_call)


def jax_profile(step, steps: int) -> list[dict]:
    """A jaxpr cost breakdown: each equation of one step dispatched and waited for on its own
    (what jax.eager does), summed per primitive; for the compiled modes also the jitted step's
    own time and what XLA's cost analysis says it computes."""
    import jax

    t0 = time.perf_counter()
    for _ in range(steps):
        step.call()
    whole = 1e6 * (time.perf_counter() - t0) / steps / step.steps_per_call
    fn, args = step.one_step()  # the arguments as they are now (a jitted step donates its old ones)
    closed = jax.make_jaxpr(fn)(*args)
    leaves = jax.tree_util.tree_leaves(args)
    # each primitive compiles on its first dispatch
    _timed_eval(closed.jaxpr, closed.consts, leaves, {})
    entries: dict[str, tuple[int, float]] = {}
    for _ in range(steps):
        _timed_eval(closed.jaxpr, closed.consts, leaves, entries)
    rows = _rows(
        {f"op by op (as jax.eager dispatches): {k}": (c, s) for k, (c, s) in entries.items()}, steps
    )
    head = [
        {
            "entry": "the step as the benchmark times it (step.call)",
            "calls_per_step": 1.0,
            "us_per_step": whole,
            "share": float("nan"),
        }
    ]
    if (
        getattr(step, "mode", "eager") == "eager"
    ):  # value_and_grad is traced again in Python at every call
        dispatch = sum(r["us_per_step"] for r in rows)
        head.append(
            {
                "entry": "of which: autodiff tracing and Python around the ops (step - op-by-op "
                "total)",
                "calls_per_step": 1.0,
                "us_per_step": whole - dispatch,
                "share": float("nan"),
            }
        )
        return head + rows
    return head + _jit_rows(fn, args, steps) + rows


def _timed_eval(jaxpr, consts, leaves, acc) -> None:
    import jax
    from jax.extend.core import Literal

    env = dict(zip(jaxpr.constvars, consts, strict=True)) | dict(
        zip(jaxpr.invars, leaves, strict=True)
    )
    read = lambda v: v.val if isinstance(v, Literal) else env[v]  # noqa: E731
    for eqn in jaxpr.eqns:
        # as jax.core.eval_jaxpr binds an equation
        params = eqn.primitive.get_bind_params(eqn.params)
        invals = [read(v) for v in eqn.invars]
        t0 = time.perf_counter()
        with eqn.ctx.manager:
            out = jax.block_until_ready(eqn.primitive.bind(*invals, **params))
        dt = time.perf_counter() - t0
        calls, secs = acc.get(eqn.primitive.name, (0, 0.0))
        acc[eqn.primitive.name] = (calls + 1, secs + dt)
        outs = out if eqn.primitive.multiple_results else [out]
        env.update(zip(eqn.outvars, outs, strict=True))


def _jit_rows(fn, args, steps: int) -> list[dict]:
    """The compiled step as one entry, with XLA's cost analysis, and a jitted identity on the
    same arguments: what dispatching this pytree costs before any compute."""
    import jax

    compiled = jax.jit(fn).lower(*args).compile()
    cost = compiled.cost_analysis() or {}
    cost = cost[0] if isinstance(cost, list) else cost
    ident = jax.jit(lambda *a: a)
    out = []
    for name, call in (
        (
            f"jit step: XLA executable ({cost.get('flops', 0):.3g} FLOP, "
            f"{cost.get('bytes accessed', 0):.3g} bytes accessed)",
            lambda: compiled(*args),
        ),
        ("jit dispatch alone: identity on the same arguments", lambda: ident(*args)),
    ):
        for _ in range(3):
            jax.block_until_ready(call())
        t0 = time.perf_counter()
        for _ in range(steps):
            jax.block_until_ready(call())
        out.append(
            {
                "entry": name,
                "calls_per_step": 1.0,
                "us_per_step": 1e6 * (time.perf_counter() - t0) / steps,
                "share": float("nan"),
            }
        )
    return out
