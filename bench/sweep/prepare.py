"""One case from registry entry to a timed-ready step: build, first call, ops, equivalence gate.

Used by the worker process (CLI runs) and by the pytest-benchmark route alike.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import numpy as np

from models.registry import Impl, model_module
from models.registry import reference as model_reference
from models.step import Step

GATE_STEPS = 5  # steps whose losses are compared against the float64 reference before timing


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
    built.ops_per_step, built.info = (
        built.step.count_ops(),
        {**built.step.describe(), "op_unit": built.step.op_unit},
    )


@functools.lru_cache(maxsize=4)
def reference(model: str, cfg, steps: int = GATE_STEPS):
    """The float64 reference of `steps` steps, computed once per config in a process."""
    return model_reference(model, cfg, steps)


def gate_steps(step: Step) -> int:
    """Steps the gate runs: GATE_STEPS, or for a fused step of K steps per call the fewest whole
    calls that hold them (K x ceil(GATE_STEPS / K): 6, 8, 16 or 64), each losses(K): the very
    program that is timed, across calls (a scan of another length is another compile: 2 to 3 s for
    torch.scan at each MLP size, which its caches do not keep)."""
    k = step.steps_per_call
    return GATE_STEPS if k <= 1 else k * -(-GATE_STEPS // k)


def gate(step: Step, model: str, cfg) -> GateResult:
    """gate_steps(step) steps from the shared start against the float64 reference: the losses of the
    first GATE_STEPS (float32's loss error grows with the steps: at B32-H32 1e-7 after 5, 3e-5 after
    64, against the 1e-4 tolerance) and the updates after all of them (that error stays far inside
    its 1e-2: 8e-6 after 5, 1.5e-4 after 64; at most 5e-3 at any default size); every loss and
    parameter must be finite (`python scripts/gate_cost.py` gives these figures)."""
    n = gate_steps(step)
    per_call = n if step.steps_per_call <= 1 else step.steps_per_call
    step.reset()
    losses = np.concatenate(
        [np.asarray(step.losses(per_call), np.float64) for _ in range(n // per_call)]
    )  # pragma: no mutate (equivalent: dtype only)
    if losses.shape != (n,):
        return GateResult("mismatch", math.inf, math.inf, f"{losses.size} losses for {n} steps")
    ref_losses, ref_params = reference(model, cfg, n)
    params = step.params()
    loss_err, update_err, why = model_module(model).compare(
        cfg, losses[:GATE_STEPS], params, (ref_losses[:GATE_STEPS], ref_params)
    )
    bad = np.flatnonzero(~np.isfinite(losses))
    finite = bad.size == 0 and all(np.isfinite(p).all() for p in params)
    if why or not finite:
        return GateResult(
            "mismatch" if finite else "diverged",
            loss_err,
            update_err,
            why or f"non-finite loss at step {bad[0] + 1} of {n}: {losses[bad[0]]}",
        )
    return GateResult("ok", loss_err, update_err)


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
