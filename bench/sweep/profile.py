"""`python -m bench profile --impl NAME --size SIZE`: the top entries of one step's profile, with
the implementation's framework's own profiler (bench/profilers.py), in this process."""

from __future__ import annotations

import math

from bench import frameworks
from bench.sweep import prepare
from bench.timing import Budget, warm_up
from models.registry import Impl


def profile(
    impl: Impl, size, threads: int, steps: int, device: str = "cpu"
) -> tuple[str, list[dict]]:
    """(a header line, rows sorted by time per step). Pins the threads as a worker does first."""
    frameworks.pin_process(threads, device)
    dev = frameworks.run_device(impl, device)
    _, keep = frameworks.setup(impl.framework, threads, dev)
    from bench.sweep import profilers

    built = prepare.build(impl, size.config(), size.steps_per_call(), dev)
    warm_up(built.step.call, Budget(warmup_s=0.2))
    rows = getattr(profilers, frameworks.get(impl.framework).profiler)(built.step, steps)
    head = (
        f"{impl.name} {size.label}: {steps} calls of {built.step.steps_per_call} step(s), "
        f"{threads} thread(s), "
        f"profiler {frameworks.get(impl.framework).profiler}; first call {built.first_call_s:.3g} s"
    )
    del keep
    return head, rows


def table(rows: list[dict], top: int) -> str:
    lines = [f"{'µs/step':>10} {'share':>6} {'calls/step':>10}  entry"]
    for r in rows[:top]:
        share = f"{100 * r['share']:5.1f}%" if math.isfinite(r["share"]) else "     -"
        lines.append(f"{r['us_per_step']:10.2f} {share} {r['calls_per_step']:10.2f}  {r['entry']}")
    return "\n".join(lines)
