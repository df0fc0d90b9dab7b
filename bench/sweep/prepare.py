"""One case from registry entry to a timed-ready step: build, first call, ops, equivalence gate.

Used by the worker process (CLI runs) and by the pytest-benchmark route alike.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

from models.registry import Impl, model_module
from models.registry import reference as model_reference
from models.step import Step

GATE_STEPS = 5  # steps compared against the float64 reference before timing


@dataclass
class Built:
    step: Step
    first_call_s: float  # the first call on a fresh build: tracing, compilation, lazy loads
    ops_per_step: int | None = None  # set by describe_step, after the case's timing
    info: dict | None = None  # step.describe(), likewise


@dataclass
class GateResult:
    status: str  # ok, mismatch or diverged
    loss_rel_err: float
    update_rel_err: float
    error: str = ""


def build(impl: Impl, cfg, steps_per_call: int, device: str = "cpu") -> Built:
    """Build the step (steps_per_call steps per call for fused implementations) and time its first
    call. Its op count and description come later, from describe_step."""
    step = impl.load()(cfg, steps_per_call if impl.fused else 1, device)
    t0 = time.perf_counter_ns()
    step.call()
    return Built(step, (time.perf_counter_ns() - t0) / 1e9)


def describe_step(built: Built) -> None:
    """Count the step's ops and ask how it runs (graphs, breaks, ...) into built. It may run the step
    (count_ops runs one step eagerly) and torch's describe() resets Dynamo (torch._dynamo.explain
    does): every step compiled in the process compiles again at its next call. So a caller describes
    a case once the timing of every case in its process is done (the sweep runner asks each worker
    after the round, bench/sweep/runner.describe_cases; the pytest route after its benchmark)."""
    built.ops_per_step, built.info = built.step.count_ops(), {**built.step.describe(), "op_unit": built.step.op_unit}


@functools.lru_cache(maxsize=4)
def reference(model: str, cfg):
    """The float64 reference of GATE_STEPS steps, computed once per config in a process."""
    return model_reference(model, cfg, GATE_STEPS)


def gate(step: Step, model: str, cfg) -> GateResult:
    """GATE_STEPS steps from the shared start against the float64 reference."""
    step.reset()
    losses = step.losses(GATE_STEPS)
    loss_err, update_err, why = model_module(model).compare(cfg, losses, step.params(), reference(model, cfg))
    if not why:
        return GateResult("ok", loss_err, update_err)
    finite = all(math.isfinite(v) for v in losses)
    return GateResult("mismatch" if finite else "diverged", loss_err, update_err, why)


TAIL_STEPS = 1  # steps after timing: the loss of the parameters the timed calls left must be finite


def tail_steps(step: Step) -> int:
    """Steps the after-timing check runs: TAIL_STEPS (one is enough to see whether the timed calls
    left non-finite parameters, and every round pays it: 5 cost JAX's eager GPT about 4 s a round),
    or one call's K for a fused step, so that the check reuses the program that was timed (a scan
    of another length is another compile: torch.scan's costs 10 s or more in every process, its
    cache does not keep it)."""
    return step.steps_per_call if step.steps_per_call > 1 else TAIL_STEPS


def still_finite(step: Step) -> str:
    """'' when the steps after timing (tail_steps) give finite losses, else why not."""
    tail = step.losses(tail_steps(step))
    if all(math.isfinite(v) for v in tail):
        return ""
    return f"non-finite loss after timing: {[float(v) for v in tail]}"
