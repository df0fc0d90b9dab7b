"""Tiny GPT in JAX: pure functions, AdamW written out (a few lines, the same arithmetic as
torch.optim.AdamW; no optax dependency). `jax.eager` runs the step op by op, `jax.jit` jits it
with the state donated, `jax.scan` fuses K steps in one jitted lax.scan."""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from models.jax_util import ModeStep

from .model import BLOCK, GPTConfig, decay_mask, init_params, make_batch

LN_EPS = 1e-5


def layernorm(x, w, b):
    mean = x.mean(-1, keepdims=True)  # (B, T, 1)
    xc = x - mean
    var = (xc * xc).mean(-1, keepdims=True)
    return xc * jax.lax.rsqrt(var + LN_EPS) * w + b  # (B, T, C)


def attention(qkv, n_head):
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // n_head
    # (B, nh, T, hs)
    q, k, v = (
        a.reshape(B, T, n_head, hs).transpose(0, 2, 1, 3) for a in jnp.split(qkv, 3, axis=-1)
    )
    att = (q @ k.transpose(0, 1, 3, 2)) / math.sqrt(hs)  # (B, nh, T, T)
    causal = jnp.tril(jnp.ones((T, T), bool))
    att = jax.nn.softmax(jnp.where(causal, att, -jnp.inf), axis=-1)
    return (att @ v).transpose(0, 2, 1, 3).reshape(B, T, C)  # (B, T, C)


def gpt_loss(params, idx, targets, cfg: GPTConfig):
    """Mean next-token cross-entropy. params in models.gpt.param_names order."""
    wte, wpe = params[0], params[1]
    x = wte[idx] + wpe[: idx.shape[1]]  # (B, T, C)
    nb = len(BLOCK)
    for layer in range(cfg.n_layer):
        ln1_w, ln1_b, attn_w, attn_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, fcp_w, fcp_b = (
            params[2 + layer * nb : 2 + (layer + 1) * nb]
        )
        x = (
            x
            + attention(layernorm(x, ln1_w, ln1_b) @ attn_w + attn_b, cfg.n_head) @ proj_w
            + proj_b
        )
        h = jax.nn.gelu(layernorm(x, ln2_w, ln2_b) @ fc_w + fc_b, approximate=True)  # (B, T, 4C)
        x = x + h @ fcp_w + fcp_b
    logits = layernorm(x, params[-2], params[-1]) @ wte.T  # (B, T, V), tied head
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, targets[..., None], axis=-1))


def adamw_step(state, idx, targets, cfg: GPTConfig):
    """(params, m, v, t) -> (new state, loss): value_and_grad + AdamW."""
    params, m, v, t = state
    loss, grads = jax.value_and_grad(gpt_loss)(params, idx, targets, cfg)
    t = t + 1
    bc1, bc2 = 1 - cfg.beta1**t, 1 - cfg.beta2**t
    new_p, new_m, new_v = [], [], []
    for p, g, mi, vi, d in zip(params, grads, m, v, decay_mask(cfg), strict=True):
        mi = cfg.beta1 * mi + (1 - cfg.beta1) * g
        vi = cfg.beta2 * vi + (1 - cfg.beta2) * g * g
        if d:
            p = p * (1 - cfg.lr * cfg.weight_decay)
        new_p.append(p - (cfg.lr / bc1) * mi / (jnp.sqrt(vi / bc2) + cfg.eps))
        new_m.append(mi)
        new_v.append(vi)
    return (new_p, new_m, new_v, t), loss


jit_step = jax.jit(adamw_step, static_argnums=3, donate_argnums=0)


@partial(jax.jit, static_argnums=(3, 4), donate_argnums=0)
def scan_steps(state, idx, targets, cfg: GPTConfig, steps_per_call: int):
    """steps_per_call AdamW steps in one call: (state, idx, targets) -> (new state, losses (steps_per_call,))."""
    return jax.lax.scan(
        lambda s, _: adamw_step(s, idx, targets, cfg), state, None, length=steps_per_call
    )


class JaxGPTStep(ModeStep):
    pure, jitted, scanned = (
        staticmethod(adamw_step),
        staticmethod(jit_step),
        staticmethod(scan_steps),
    )

    def __init__(self, cfg: GPTConfig, mode: str, steps_per_call: int = 1) -> None:
        idx, targets = make_batch(cfg)
        data = (jnp.asarray(idx, jnp.int32), jnp.asarray(targets, jnp.int32))  # (B, T) each
        super().__init__(cfg, mode, steps_per_call, data, {"cfg": cfg})

    def init_state(self) -> tuple:
        p = [jnp.asarray(a) for a in init_params(self.cfg)]
        return p, [jnp.zeros_like(a) for a in p], [jnp.zeros_like(a) for a in p], jnp.int32(0)

    def params(self) -> list[np.ndarray]:
        return [np.array(p) for p in self.state[0]]


def build_eager(cfg: GPTConfig, steps_per_call: int = 1, device: str = "cpu") -> JaxGPTStep:
    return JaxGPTStep(cfg, "eager")


def build_jit(cfg: GPTConfig, steps_per_call: int = 1, device: str = "cpu") -> JaxGPTStep:
    return JaxGPTStep(cfg, "jit")


def build_scan(cfg: GPTConfig, steps_per_call: int = 1, device: str = "cpu") -> JaxGPTStep:
    return JaxGPTStep(cfg, "scan", steps_per_call)


def block(x, p, n_head):
    """One transformer block: x (b, T, C); p its 12 parameters in BLOCK order."""
    ln1_w, ln1_b, attn_w, attn_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, fcp_w, fcp_b = p
    x = x + attention(layernorm(x, ln1_w, ln1_b) @ attn_w + attn_b, n_head) @ proj_w + proj_b
    h = jax.nn.gelu(layernorm(x, ln2_w, ln2_b) @ fc_w + fc_b, approximate=True)  # (b, T, 4C)
    return x + h @ fcp_w + fcp_b


def pipeline_stages(cfg: GPTConfig, n: int) -> list[tuple]:
    """The GPT cut into n stages of consecutive blocks, as torch_impl.pipeline_stages cuts it:
    [(fn(params, inp) -> out, [index in param_names])]. The first stage embeds (wte, wpe: idx
    (b, T) -> (b, T, C)); the last normalises and projects with its own copy of the tied wte
    (index 0 in both: the caller sums the two gradients) and returns the logits (b, T, V)."""
    if not 1 <= n <= cfg.n_layer:
        raise ValueError(f"{n} stages for {cfg.n_layer} blocks")
    nb, last_i = len(BLOCK), 2 + len(BLOCK) * cfg.n_layer
    out = []
    for s, chunk in enumerate(np.array_split(np.arange(cfg.n_layer), n)):
        first, last = s == 0, s == n - 1
        idx = ([0, 1] if first else []) + [2 + nb * int(i) + j for i in chunk for j in range(nb)]
        idx += [last_i, last_i + 1, 0] if last else []

        k = len(chunk)

        def fn(params, x, first=first, last=last, k=k):
            if first:
                x = params[0][x] + params[1][: x.shape[1]]  # (b, T, C)
            off = 2 if first else 0
            for i in range(k):
                x = block(x, params[off + nb * i : off + nb * (i + 1)], cfg.n_head)
            if last:
                x = layernorm(x, params[-3], params[-2]) @ params[-1].T  # (b, T, V)
            return x

        out.append((fn, idx))
    return out


def pipeline_loss(logits, targets):
    """Mean next-token cross-entropy: logits (b, T, V), targets (b, T)."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, targets[..., None], axis=-1))
