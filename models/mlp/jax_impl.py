"""MLP in JAX: one pure step, run op by op (`jax.eager`), jitted with donated parameters
(`jax.jit`), or K steps fused in one jitted lax.scan (`jax.scan`)."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from models.jax_util import ModeStep

from .model import MLPConfig, init_params, make_batch


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


class JaxStep(ModeStep):
    pure, jitted, scanned = staticmethod(sgd_step), staticmethod(jit_step), staticmethod(scan_steps)

    def __init__(self, cfg: MLPConfig, mode: str, steps_per_call: int = 1) -> None:
        x, y = make_batch(cfg)
        super().__init__(
            cfg, mode, steps_per_call, (jnp.asarray(x), jnp.asarray(y), jnp.float32(cfg.lr))
        )  # (B, D), (B,)

    def init_state(self) -> list:
        return [jnp.asarray(p) for p in init_params(self.cfg)]

    def params(self) -> list[np.ndarray]:
        return [np.array(p) for p in self.state]


def build_eager(cfg: MLPConfig, steps_per_call: int = 1, device: str = "cpu") -> JaxStep:
    return JaxStep(cfg, "eager")


def build_jit(cfg: MLPConfig, steps_per_call: int = 1, device: str = "cpu") -> JaxStep:
    return JaxStep(cfg, "jit")


def build_scan(cfg: MLPConfig, steps_per_call: int = 1, device: str = "cpu") -> JaxStep:
    return JaxStep(cfg, "scan", steps_per_call)


def pipeline_stages(cfg: MLPConfig, n: int) -> list[tuple]:
    """The MLP cut into n stages of consecutive linear layers, as torch_impl.pipeline_stages cuts
    it: [(fn(params, inp) -> out, [index in init_params' list])]. A stage's params are its
    layers' [W (in, out), b]; the last stage returns the logits (pipeline_loss gives the loss)."""
    if not 1 <= n <= cfg.depth + 1:
        raise ValueError(f"{n} stages for {cfg.depth + 1} linear layers")
    out = []
    for chunk in np.array_split(np.arange(cfg.depth + 1), n):
        last_layer, k = int(chunk[-1]) == cfg.depth, len(chunk)

        def fn(params, h, k=k, last_layer=last_layer):
            for i in range(k):
                h = h @ params[2 * i] + params[2 * i + 1]  # (b, out)
                if not (last_layer and i == k - 1):
                    h = jax.nn.relu(h)  # (b, H)
            return h

        out.append((fn, [i for j in chunk for i in (2 * int(j), 2 * int(j) + 1)]))
    return out


def pipeline_loss(logits, y):
    """Mean cross-entropy of a (micro)batch: logits (b, C), y (b,)."""
    logp = jax.nn.log_softmax(logits, axis=-1)  # (b, C)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
