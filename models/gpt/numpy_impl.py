"""Tiny GPT in NumPy: forward and backward by hand, AdamW separate (registry name `numpy.loop`).

Each layer is `<layer>_forward(...) -> (out, cache)` and `<layer>_backward(dout, cache) -> grads`,
as in llm.c. The functions are dtype-generic: `reference` runs them in float64, the
benchmark in float32. Shapes: B batch, T sequence, C width, nh heads, hs = C / nh, V vocabulary.
"""

from __future__ import annotations

import math

import numpy as np

from models.gpt.model import BLOCK, GPTConfig, decay_mask, init_params, make_batch

LN_EPS = 1e-5
GELU_S = math.sqrt(2.0 / math.pi)


def embedding_forward(idx, wte, wpe):
    """idx (B, T) int -> x (B, T, C) = wte[idx] + wpe[:T]."""
    T = idx.shape[1]
    return wte[idx] + wpe[None, :T], idx  # (B, T, C)


def embedding_backward(dx, idx, wte_shape, wpe_shape):
    """dx (B, T, C) -> dwte (V, C) (scatter-add), dwpe (T, C)."""
    dwte = np.zeros(wte_shape, dx.dtype)
    np.add.at(dwte, idx.ravel(), dx.reshape(-1, dx.shape[-1]))  # (V, C)
    dwpe = np.zeros(wpe_shape, dx.dtype)
    dwpe[: idx.shape[1]] = dx.sum(axis=0)  # (T, C)
    return dwte, dwpe


def layernorm_forward(x, w, b):
    """x (B, T, C) normalised over C, then * w (C) + b (C)."""
    mean = x.mean(axis=-1, keepdims=True)  # (B, T, 1)
    xc = x - mean  # (B, T, C)
    var = (xc * xc).mean(axis=-1, keepdims=True)  # (B, T, 1), two-pass: no cancellation
    rstd = 1.0 / np.sqrt(var + LN_EPS)  # (B, T, 1)
    xhat = xc * rstd  # (B, T, C)
    return xhat * w + b, (xhat, rstd, w)


def layernorm_backward(dout, cache):
    """dout (B, T, C) -> dx (B, T, C), dw (C), db (C)."""
    xhat, rstd, w = cache
    dw = (dout * xhat).sum(axis=(0, 1))  # (C,)
    db = dout.sum(axis=(0, 1))  # (C,)
    dxhat = dout * w  # (B, T, C)
    dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    return dx, dw, db


def linear_forward(x, w, b):
    """x (B, T, in) @ w (in, out) + b (out) -> (B, T, out)."""
    return x @ w + b, (x, w)


def linear_backward(dout, cache):
    """dout (B, T, out) -> dx (B, T, in), dw (in, out), db (out)."""
    x, w = cache
    dx = dout @ w.T  # (B, T, in)
    dw = x.reshape(-1, x.shape[-1]).T @ dout.reshape(-1, dout.shape[-1])  # (in, out)
    db = dout.sum(axis=(0, 1))  # (out,)
    return dx, dw, db


def attention_forward(qkv, n_head):
    """Causal multi-head self-attention. qkv (B, T, 3C) -> y (B, T, C)."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // n_head
    q, k, v = (a.reshape(B, T, n_head, hs).transpose(0, 2, 1, 3) for a in np.split(qkv, 3, axis=-1))  # (B, nh, T, hs)
    att = (q @ k.transpose(0, 1, 3, 2)) / math.sqrt(hs)  # (B, nh, T, T)
    future = np.triu(np.ones((T, T), bool), k=1)  # (T, T): key after query
    att = np.where(future, -np.inf, att)
    att = att - att.max(axis=-1, keepdims=True)  # stable softmax: the diagonal is always finite
    p = np.exp(att)
    p /= p.sum(axis=-1, keepdims=True)  # (B, nh, T, T), zero above the diagonal
    y = p @ v  # (B, nh, T, hs)
    return y.transpose(0, 2, 1, 3).reshape(B, T, C), (q, k, v, p)


def attention_backward(dy, cache):
    """dy (B, T, C) -> dqkv (B, T, 3C)."""
    q, k, v, p = cache
    B, nh, T, hs = q.shape
    dy = dy.reshape(B, T, nh, hs).transpose(0, 2, 1, 3)  # (B, nh, T, hs)
    dp = dy @ v.transpose(0, 1, 3, 2)  # (B, nh, T, T)
    dv = p.transpose(0, 1, 3, 2) @ dy  # (B, nh, T, hs)
    datt = p * (dp - (dp * p).sum(axis=-1, keepdims=True))  # softmax backward; masked entries stay 0
    datt /= math.sqrt(hs)
    dq = datt @ k  # (B, nh, T, hs)
    dk = datt.transpose(0, 1, 3, 2) @ q  # (B, nh, T, hs)
    merge = lambda a: a.transpose(0, 2, 1, 3).reshape(B, T, nh * hs)  # noqa: E731  (B, T, C)
    return np.concatenate([merge(dq), merge(dk), merge(dv)], axis=-1)  # (B, T, 3C)


def gelu_forward(x):
    """tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    t = np.tanh(GELU_S * (x + 0.044715 * x**3))
    return 0.5 * x * (1.0 + t), (x, t)


def gelu_backward(dout, cache):
    x, t = cache
    du = GELU_S * (1.0 + 3 * 0.044715 * x * x)
    return dout * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


def xent_forward(logits, targets):
    """Mean cross-entropy of softmax(logits (B, T, V)) against targets (B, T)."""
    z = logits - logits.max(axis=-1, keepdims=True)  # (B, T, V)
    logsum = np.log(np.exp(z).sum(axis=-1, keepdims=True))  # (B, T, 1)
    logp = z - logsum  # (B, T, V)
    picked = np.take_along_axis(logp, targets[..., None], axis=-1)  # (B, T, 1)
    return float(-picked.mean()), (np.exp(logp), targets)


def xent_backward(cache):
    """dlogits (B, T, V) = (probs - onehot(targets)) / (B T)."""
    probs, targets = cache
    d = probs.copy()
    np.put_along_axis(d, targets[..., None], np.take_along_axis(d, targets[..., None], axis=-1) - 1.0, axis=-1)
    return d / targets.size


def block_forward(x, p, n_head):
    """One pre-LayerNorm block. x (B, T, C); p: this block's 12 tensors in BLOCK order."""
    ln1_w, ln1_b, attn_w, attn_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, fcp_w, fcp_b = p
    h1, c_ln1 = layernorm_forward(x, ln1_w, ln1_b)  # (B, T, C)
    qkv, c_qkv = linear_forward(h1, attn_w, attn_b)  # (B, T, 3C)
    a, c_att = attention_forward(qkv, n_head)  # (B, T, C)
    ao, c_proj = linear_forward(a, proj_w, proj_b)  # (B, T, C)
    x = x + ao  # residual
    h2, c_ln2 = layernorm_forward(x, ln2_w, ln2_b)  # (B, T, C)
    f, c_fc = linear_forward(h2, fc_w, fc_b)  # (B, T, 4C)
    g, c_gelu = gelu_forward(f)  # (B, T, 4C)
    mo, c_fcp = linear_forward(g, fcp_w, fcp_b)  # (B, T, C)
    return x + mo, (c_ln1, c_qkv, c_att, c_proj, c_ln2, c_fc, c_gelu, c_fcp)


def block_backward(dx, cache):
    """dx (B, T, C) -> dx into the block, and its 12 gradients in BLOCK order."""
    c_ln1, c_qkv, c_att, c_proj, c_ln2, c_fc, c_gelu, c_fcp = cache
    dg, dfcp_w, dfcp_b = linear_backward(dx, c_fcp)  # (B, T, 4C)
    df = gelu_backward(dg, c_gelu)
    dh2, dfc_w, dfc_b = linear_backward(df, c_fc)  # (B, T, C)
    dxm, dln2_w, dln2_b = layernorm_backward(dh2, c_ln2)
    dx = dx + dxm  # through the residual
    da, dproj_w, dproj_b = linear_backward(dx, c_proj)  # (B, T, C)
    dqkv = attention_backward(da, c_att)  # (B, T, 3C)
    dh1, dattn_w, dattn_b = linear_backward(dqkv, c_qkv)
    dxa, dln1_w, dln1_b = layernorm_backward(dh1, c_ln1)
    grads = [dln1_w, dln1_b, dattn_w, dattn_b, dproj_w, dproj_b, dln2_w, dln2_b, dfc_w, dfc_b, dfcp_w, dfcp_b]
    return dx + dxa, grads


def gpt_forward(params, idx, targets, cfg: GPTConfig):
    """Loss and cache. params in model.param_names order."""
    wte, wpe = params[0], params[1]
    nb = len(BLOCK)
    x, c_emb = embedding_forward(idx, wte, wpe)  # (B, T, C)
    c_blocks = []
    for layer in range(cfg.n_layer):
        x, c = block_forward(x, params[2 + layer * nb: 2 + (layer + 1) * nb], cfg.n_head)
        c_blocks.append(c)
    xf, c_lnf = layernorm_forward(x, params[-2], params[-1])  # (B, T, C)
    logits = xf @ wte.T  # (B, T, V): head tied to the token embedding
    loss, c_xent = xent_forward(logits, targets)
    return loss, (c_emb, c_blocks, xf, c_lnf, c_xent)


def gpt_backward(params, cache, cfg: GPTConfig):
    """Gradients in params order."""
    c_emb, c_blocks, xf, c_lnf, c_xent = cache
    wte = params[0]
    dlogits = xent_backward(c_xent)  # (B, T, V)
    dwte_head = dlogits.reshape(-1, cfg.vocab).T @ xf.reshape(-1, cfg.n_embd)  # (V, C)
    dxf = dlogits @ wte  # (B, T, C)
    dx, dlnf_w, dlnf_b = layernorm_backward(dxf, c_lnf)
    block_grads = []
    for c in reversed(c_blocks):
        dx, g = block_backward(dx, c)
        block_grads = g + block_grads
    dwte, dwpe = embedding_backward(dx, c_emb, params[0].shape, params[1].shape)
    return [dwte + dwte_head, dwpe] + block_grads + [dlnf_w, dlnf_b]


def adamw_update(params, grads, m, v, t, cfg: GPTConfig, decay):
    """AdamW in place, as torch.optim.AdamW: p *= 1 - lr wd (decayed tensors only), then
    p -= lr * m_hat / (sqrt(v_hat) + eps), with bias-corrected moments at step t (from 1)."""
    bc1, bc2 = 1.0 - cfg.beta1**t, 1.0 - cfg.beta2**t
    for p, g, mi, vi, d in zip(params, grads, m, v, decay, strict=True):
        mi *= cfg.beta1
        mi += (1.0 - cfg.beta1) * g
        vi *= cfg.beta2
        vi += (1.0 - cfg.beta2) * g * g
        if d:
            p *= 1.0 - cfg.lr * cfg.weight_decay
        p -= (cfg.lr / bc1) * mi / (np.sqrt(vi / bc2) + cfg.eps)


class GPTState:
    """Parameters, AdamW moments and step count; `step()` is one training step."""

    def __init__(self, cfg: GPTConfig, params: list[np.ndarray]) -> None:
        self.cfg, self.params = cfg, params
        self.decay = decay_mask(cfg)
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, idx, targets) -> float:
        loss, cache = gpt_forward(self.params, idx, targets, self.cfg)
        grads = gpt_backward(self.params, cache, self.cfg)
        self.t += 1
        adamw_update(self.params, grads, self.m, self.v, self.t, self.cfg, self.decay)
        return loss


def reference(cfg: GPTConfig, steps: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Float64 run of `steps` AdamW steps from the shared start: (losses (steps,), final params)."""
    state = GPTState(cfg, [p.astype(np.float64) for p in init_params(cfg)])
    idx, targets = make_batch(cfg)
    losses = np.array([state.step(idx, targets) for _ in range(steps)])
    return losses, state.params


class NumpyGPTStep:
    steps_per_call = 1
    gate = True

    def __init__(self, cfg: GPTConfig) -> None:
        self.cfg = cfg
        self.idx, self.targets = make_batch(cfg)
        self.reset()

    def call(self) -> None:
        self.state.step(self.idx, self.targets)

    def losses(self, n: int) -> np.ndarray:
        return np.array([self.state.step(self.idx, self.targets) for _ in range(n)])

    def params(self) -> list[np.ndarray]:
        return [p.copy() for p in self.state.params]

    def count_ops(self) -> int:
        return ops_per_step(self.cfg)

    def describe(self) -> dict:
        return {}

    def reset(self) -> None:
        self.state = GPTState(self.cfg, init_params(self.cfg))


def ops_per_step(cfg: GPTConfig) -> int:
    """Layer-function calls per step, counted from the code above: per block 8 forward + 8
    backward; embedding, final LayerNorm, head matmul and loss forward and backward (8); the
    AdamW update of each tensor (12 per block + 4)."""
    return cfg.n_layer * (8 + 8 + 12) + 8 + 4


def build(cfg: GPTConfig, k: int = 1, device: str = "cpu") -> NumpyGPTStep:
    return NumpyGPTStep(cfg)
