"""The interface every implementation exposes to the harness.

An implementation is a module-level builder `build(cfg, steps_per_call=1, device="cpu") -> Step`, registered
in `models.registry` under a name like `torch.eager`. `steps_per_call` is the number of training steps one
`call()` runs (fused modes use it, the others ignore it); `device` is where frameworks that can
use a GPU put their tensors (the others ignore it).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Step(Protocol):
    """What the harness times and checks. `call()` must return only when its work is done."""

    steps_per_call: int  # training steps done by one call() (K for fused modes, else 1)
    gate: bool  # False only for a step that computes nothing (the control): no equivalence check
    op_unit: (
        str  # what count_ops() counts, e.g. "ATen ops" (per-op costs use the model's own count)
    )

    def call(self) -> None:
        """steps_per_call training steps; results ready (synced) on return."""

    def losses(self, n: int) -> np.ndarray:
        """Run n steps from the current state; the per-step losses, float64 (n,)."""

    def params(self) -> list[np.ndarray]:
        """Current parameters as float32 NumPy arrays in the model's layout (model.py)."""

    def reset(self) -> None:
        """Back to the initial parameters (and optimizer state)."""

    def count_ops(self) -> int:
        """Ops of one step as this implementation's framework counts them (op_unit)."""

    def describe(self) -> dict:
        """Facts about how this step runs, recorded in run.json (e.g. the optimizer
        implementation); `graphs` and `graph_breaks` (compiled torch rows) become columns."""
