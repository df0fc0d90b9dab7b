"""What the JAX implementations share: one pure step run three ways. `jax.eager` runs it op by
op, `jax.jit` runs it jitted with the state donated, `jax.scan` runs steps_per_call of it in one
jitted lax.scan. Every call blocks until its result is ready (JAX dispatches asynchronously)."""

from __future__ import annotations

from functools import partial

import jax
import numpy as np


class ModeStep:
    """A subclass sets pure ((state, *data, **static) -> (state, loss)), jitted (the same, jitted),
    scanned ((state, *data, **static, steps_per_call=n) -> (state, losses)), and init_state()."""

    gate = True
    op_unit = "jaxpr equations"

    def __init__(
        self, cfg, mode: str, steps_per_call: int, data: tuple, static: dict | None = None
    ) -> None:
        self.cfg, self.mode, self.data, self.static = cfg, mode, data, static or {}
        self.steps_per_call = steps_per_call if mode == "scan" else 1
        self.reset()

    def _one(self):
        step = self.jitted if self.mode == "jit" else self.pure
        self.state, loss = step(self.state, *self.data, **self.static)
        return loss

    def _scan(self, n: int):
        self.state, losses = self.scanned(self.state, *self.data, **self.static, steps_per_call=n)
        return losses

    def call(self) -> None:
        jax.block_until_ready(
            self._scan(self.steps_per_call) if self.mode == "scan" else self._one()
        )

    def losses(self, n: int) -> np.ndarray:
        if self.mode == "scan":  # the same fused scan, n steps long
            return np.asarray(self._scan(n), np.float64)
        return np.array([float(self._one()) for _ in range(n)])

    def one_step(self):
        """(pure function, its current arguments) of one training step: for ops and profiles."""
        return partial(self.pure, **self.static), (self.state, *self.data)

    def count_ops(self) -> int:
        """Equations of one step's jaxpr (value_and_grad and the update): what eager mode
        dispatches one by one, and what jit and scan compile."""
        fn, args = self.one_step()
        return len(jax.make_jaxpr(fn)(*args).jaxpr.eqns)

    def describe(self) -> dict:
        return {}

    def reset(self) -> None:
        self.state = self.init_state()
