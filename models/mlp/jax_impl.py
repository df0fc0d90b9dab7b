"""MLP in JAX: one pure step, run op by op (`jax.eager`), jitted with donated parameters
(`jax.jit`), or K steps fused in one jitted lax.scan (`jax.scan`)."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from models.mlp.model import MLPConfig, init_params, make_batch


def mlp_loss(params, x, y):
    """Mean cross-entropy. params [W0, b0, ...] with W (in, out); x (B, D); y (B,)."""
    h = x
    n = len(params) // 2
    for i in range(n):
        h = h @ params[2 * i] + params[2 * i + 1]  # (B, out)
        if i < n - 1:
            h = jax.nn.relu(h)  # (B, H)
    logp = jax.nn.log_softmax(h, axis=-1)  # (B, C)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def sgd_step(params, x, y, lr):
    """(params, x, y) -> (new params, loss): value_and_grad + SGD."""
    loss, grads = jax.value_and_grad(mlp_loss)(params, x, y)
    return [p - lr * g for p, g in zip(params, grads, strict=True)], loss


jit_step = jax.jit(sgd_step, donate_argnums=0)


@partial(jax.jit, static_argnames="steps_per_call", donate_argnums=0)
def scan_steps(params, x, y, lr, steps_per_call):
    """steps_per_call SGD steps in one call: (params, x, y) -> (new params, losses (steps_per_call,))."""

    def body(p, _):
        return sgd_step(p, x, y, lr)

    return jax.lax.scan(body, params, None, length=steps_per_call)


class JaxStep:
    gate = True
    op_unit = "jaxpr equations"

    def __init__(self, cfg: MLPConfig, mode: str, steps_per_call: int = 1) -> None:
        self.cfg, self.mode = cfg, mode
        self.steps_per_call = steps_per_call if mode == "scan" else 1
        x, y = make_batch(cfg)
        self.x, self.y = jnp.asarray(x), jnp.asarray(y)  # (B, D), (B,)
        self.lr = jnp.float32(cfg.lr)
        self.reset()

    def _one(self):
        step = jit_step if self.mode == "jit" else sgd_step
        self.p, loss = step(self.p, self.x, self.y, self.lr)
        return loss

    def call(self) -> None:
        if self.mode == "scan":
            self.p, losses = scan_steps(self.p, self.x, self.y, self.lr, self.steps_per_call)
            jax.block_until_ready(losses)
        else:
            jax.block_until_ready(self._one())

    def losses(self, n: int) -> np.ndarray:
        if self.mode == "scan":  # the same fused scan, n steps long
            self.p, losses = scan_steps(self.p, self.x, self.y, self.lr, n)
            return np.asarray(losses, np.float64)
        return np.array([float(self._one()) for _ in range(n)])

    def params(self) -> list[np.ndarray]:
        return [np.array(p) for p in self.p]

    def one_step(self):
        """(pure function, its current arguments) of one training step: for ops and profiles."""
        return sgd_step, (self.p, self.x, self.y, self.lr)

    def count_ops(self) -> int:
        """Equations of one step's jaxpr (value_and_grad + SGD): what eager mode dispatches
        one by one, and what jit and scan compile."""
        fn, args = self.one_step()
        return len(jax.make_jaxpr(fn)(*args).jaxpr.eqns)

    def describe(self) -> dict:
        return {}

    def reset(self) -> None:
        self.p = [jnp.asarray(p) for p in init_params(self.cfg)]


def build_eager(cfg: MLPConfig, steps_per_call: int = 1, device: str = "cpu") -> JaxStep:
    return JaxStep(cfg, "eager")


def build_jit(cfg: MLPConfig, steps_per_call: int = 1, device: str = "cpu") -> JaxStep:
    return JaxStep(cfg, "jit")


def build_scan(cfg: MLPConfig, steps_per_call: int = 1, device: str = "cpu") -> JaxStep:
    return JaxStep(cfg, "scan", steps_per_call)
