"""Model implementations. This package never imports `bench`.

Every implementation is a module-level `build(cfg) -> Step` (see `Step`) registered in
`models.registry` under a name like `torch.eager`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Step(Protocol):
    """What the harness times. `call()` must return only when its work is done (synced)."""

    steps_per_call: int  # training steps done by one call() (K for fused modes, else 1)

    def call(self) -> None:
        """steps_per_call training steps; results ready on return."""

    def losses(self, n: int) -> np.ndarray:
        """Run n steps from the current state; the per-step losses, float64 (n,)."""

    def params(self) -> list[np.ndarray]:
        """Current parameters as float32 NumPy arrays in `models.mlp` layout."""

    def reset(self) -> None:
        """Back to the initial parameters (and optimizer state)."""
