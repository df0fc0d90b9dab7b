"""`null.noop`: a step that does nothing, for any model. Timed through the whole path, it shows
the harness's own cost per sample. It computes nothing, so the equivalence gate does not apply."""

from __future__ import annotations

import numpy as np


class NoopStep:
    steps_per_call = 1
    gate = False  # nothing to compare
    op_unit = "none"

    def call(self) -> None:
        pass

    def losses(self, n: int) -> np.ndarray:
        return np.full(n, np.nan)

    def params(self) -> list[np.ndarray]:
        return []

    def count_ops(self) -> int:
        return 0

    def describe(self) -> dict:
        return {}

    def reset(self) -> None:
        pass


def build(cfg, steps_per_call: int = 1, device: str = "cpu") -> NoopStep:
    return NoopStep()
