"""Tiny GPT in NumPy: forward and backward by hand, AdamW separate (registry name `numpy.loop`).

Each layer is `<layer>_forward(..., ws, name) -> (out, cache)` and `<layer>_backward(dout, cache,
ws, name) -> grads`, as in llm.c. Every array a step writes comes from a Workspace: allocated on
the first step, reused in place (`out=`) on every later one, as the NumPy MLP does; small integer
powers are products (x*x*x, not x**3, which NumPy computes with pow). The functions are
dtype-generic: `reference` runs them in float64, the benchmark in float32.
Shapes: B batch, T sequence, C width, nh heads, hs = C / nh, V vocabulary.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .model import BLOCK, GPTConfig, decay_mask, init_params, make_batch, ops_per_step

LN_EPS = 1e-5
GELU_S = math.sqrt(2.0 / math.pi)
GELU_C = 0.044715


class Workspace:
    """Named buffers: the first request of a name allocates it, later ones reuse it."""

    def __init__(self, dtype=np.float32) -> None:
        self.dtype, self.bufs = np.dtype(dtype), {}

    def get(self, name: str, shape: tuple, dtype=None) -> np.ndarray:
        buf = self.bufs.get(name)
        if buf is None or buf.shape != shape:
            buf = self.bufs[name] = np.empty(shape, dtype or self.dtype)
        return buf


def embedding_forward(idx, wte, wpe, ws, name="emb"):
    """idx (B, T) int -> x (B, T, C) = wte[idx] + wpe[:T]."""
    B, T = idx.shape
    x = np.take(wte, idx, axis=0, out=ws.get(name, (B, T, wte.shape[1])))  # (B, T, C)
    x += wpe[:T]
    return x, idx


def embedding_backward(dx, idx, dwte, dwpe):
    """dx (B, T, C) -> dwte (V, C) += scatter of dx (dwte holds the head's gradient), dwpe (T, C)."""
    np.add.at(dwte, idx.ravel(), dx.reshape(-1, dx.shape[-1]))  # (V, C)
    dwpe[idx.shape[1] :] = 0
    np.sum(dx, axis=0, out=dwpe[: idx.shape[1]])  # (T, C)


def layernorm_forward(x, w, b, ws, name):
    """x (B, T, C) normalised over C (two-pass: no cancellation), then * w (C) + b (C)."""
    xhat = ws.get(name + ".xhat", x.shape)  # (B, T, C)
    np.subtract(x, x.mean(axis=-1, keepdims=True), out=xhat)
    var = np.einsum("btc,btc->bt", xhat, xhat)[..., None] / x.shape[-1]  # (B, T, 1)
    rstd = 1.0 / np.sqrt(var + LN_EPS)  # (B, T, 1)
    xhat *= rstd
    out = np.multiply(xhat, w, out=ws.get(name + ".out", x.shape))
    out += b
    return out, (xhat, rstd, w)


def layernorm_backward(dout, cache, ws, name):
    """dout (B, T, C) -> dx (B, T, C), dw (C), db (C)."""
    xhat, rstd, w = cache
    C = dout.shape[-1]
    dw = np.einsum("btc,btc->c", dout, xhat)  # (C,)
    db = dout.sum(axis=(0, 1))  # (C,)
    dxhat = np.multiply(dout, w, out=ws.get(name + ".dxhat", dout.shape))  # (B, T, C)
    m1 = dxhat.mean(axis=-1, keepdims=True)  # (B, T, 1)
    m2 = np.einsum("btc,btc->bt", dxhat, xhat)[..., None] / C  # (B, T, 1)
    dx = np.multiply(xhat, m2, out=ws.get(name + ".dx", dout.shape))
    np.subtract(dxhat, dx, out=dx)
    dx -= m1
    dx *= rstd
    return dx, dw, db


def linear_forward(x, w, b, ws, name):
    """x (B, T, in) @ w (in, out) + b (out) -> (B, T, out)."""
    out = np.matmul(x, w, out=ws.get(name + ".out", (*x.shape[:-1], w.shape[1])))
    out += b
    return out, (x, w)


def linear_backward(dout, cache, ws, name):
    """dout (B, T, out) -> dx (B, T, in), dw (in, out), db (out)."""
    x, w = cache
    dx = np.matmul(dout, w.T, out=ws.get(name + ".dx", x.shape))  # (B, T, in)
    dw = np.matmul(
        x.reshape(-1, x.shape[-1]).T,
        dout.reshape(-1, dout.shape[-1]),
        out=ws.get(name + ".dw", w.shape),
    )  # (in, out)
    db = dout.sum(axis=(0, 1))  # (out,)
    return dx, dw, db


@functools.lru_cache(maxsize=8)
def future(T: int) -> np.ndarray:
    """(T, T) bool: True where the key comes after the query (masked)."""
    return np.triu(np.ones((T, T), bool), k=1)


def heads(a, n_head):
    """(B, T, C) view -> (B, nh, T, hs) view."""
    B, T, C = a.shape
    return a.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)


def attention_forward(qkv, n_head, ws, name):
    """Causal multi-head self-attention. qkv (B, T, 3C) -> y (B, T, C)."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // n_head
    # (B, nh, T, hs) views
    q, k, v = (heads(qkv[..., i * C : (i + 1) * C], n_head) for i in range(3))
    # (B, nh, T, T)
    p = np.matmul(q, k.transpose(0, 1, 3, 2), out=ws.get(name + ".p", (B, n_head, T, T)))
    p *= 1.0 / math.sqrt(hs)
    np.copyto(p, -np.inf, where=future(T))  # keys after the query
    p -= p.max(axis=-1, keepdims=True)  # stable softmax: the diagonal is always finite
    np.exp(p, out=p)
    p /= p.sum(axis=-1, keepdims=True)  # zero above the diagonal
    yh = np.matmul(p, v, out=ws.get(name + ".yh", (B, n_head, T, hs)))  # (B, nh, T, hs)
    y = ws.get(name + ".y", (B, T, C))
    np.copyto(heads(y, n_head), yh)  # (B, T, C)
    return y, (q, k, v, p)


def attention_backward(dy, cache, ws, name):
    """dy (B, T, C) -> dqkv (B, T, 3C)."""
    q, k, v, p = cache
    B, nh, T, hs = q.shape
    C = nh * hs
    dyh = heads(dy, nh)  # (B, nh, T, hs) view
    dp = np.matmul(dyh, v.transpose(0, 1, 3, 2), out=ws.get(name + ".dp", p.shape))  # (B, nh, T, T)
    dp -= np.einsum("bhts,bhts->bht", dp, p)[..., None]  # softmax backward; masked entries stay 0
    dp *= p
    dp *= 1.0 / math.sqrt(hs)
    dqkv = ws.get(name + ".dqkv", (B, T, 3 * C))
    for i, (a, b) in enumerate(
        ((dp, k), (dp.transpose(0, 1, 3, 2), q), (p.transpose(0, 1, 3, 2), dyh))
    ):
        d = np.matmul(a, b, out=ws.get(f"{name}.d{i}", (B, nh, T, hs)))  # dq, dk, dv (B, nh, T, hs)
        np.copyto(heads(dqkv[..., i * C : (i + 1) * C], nh), d)
    return dqkv


def gelu_forward(x, ws, name):
    """tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    t = np.multiply(x, x, out=ws.get(name + ".t", x.shape))
    t *= x  # x^3 as a product
    t *= GELU_C
    t += x
    t *= GELU_S
    np.tanh(t, out=t)
    out = np.add(t, 1.0, out=ws.get(name + ".out", x.shape))
    out *= x
    out *= 0.5
    return out, (x, t)


def gelu_backward(dout, cache, ws, name):
    x, t = cache
    a = np.multiply(t, t, out=ws.get(name + ".a", x.shape))  # 0.5 x (1 - t^2) du + 0.5 (1 + t)
    np.subtract(1.0, a, out=a)
    a *= x
    a *= 0.5
    du = np.multiply(x, x, out=ws.get(name + ".du", x.shape))  # sqrt(2/pi) (1 + 3 0.044715 x^2)
    du *= 3 * GELU_C
    du += 1.0
    du *= GELU_S
    a *= du
    a += 0.5
    np.multiply(t, 0.5, out=du)
    a += du
    return np.multiply(dout, a, out=ws.get(name + ".dx", x.shape))


def xent_forward(logits, targets, ws, name="xent"):
    """Mean cross-entropy of softmax(logits (B, T, V)) against targets (B, T)."""
    probs = np.subtract(
        logits, logits.max(axis=-1, keepdims=True), out=ws.get(name + ".probs", logits.shape)
    )
    picked = np.take_along_axis(probs, targets[..., None], axis=-1)  # (B, T, 1) z at the targets
    np.exp(probs, out=probs)
    total = probs.sum(axis=-1, keepdims=True)  # (B, T, 1)
    probs /= total
    return float(np.mean(np.log(total) - picked)), (probs, targets)


def xent_backward(cache, ws, name="xent"):
    """dlogits (B, T, V) = (probs - onehot(targets)) / (B T)."""
    probs, targets = cache
    d = ws.get(name + ".d", probs.shape)
    np.copyto(d, probs)
    B, T = targets.shape
    d[np.arange(B)[:, None], np.arange(T)[None, :], targets] -= 1.0
    d /= targets.size
    return d


def block_forward(x, p, n_head, ws, name):
    """One pre-LayerNorm block. x (B, T, C); p: this block's 12 tensors in BLOCK order."""
    ln1_w, ln1_b, attn_w, attn_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, fcp_w, fcp_b = p
    h1, c_ln1 = layernorm_forward(x, ln1_w, ln1_b, ws, name + ".ln1")  # (B, T, C)
    qkv, c_qkv = linear_forward(h1, attn_w, attn_b, ws, name + ".qkv")  # (B, T, 3C)
    a, c_att = attention_forward(qkv, n_head, ws, name + ".attn")  # (B, T, C)
    ao, c_proj = linear_forward(a, proj_w, proj_b, ws, name + ".proj")  # (B, T, C)
    x1 = np.add(x, ao, out=ws.get(name + ".x1", x.shape))  # residual
    h2, c_ln2 = layernorm_forward(x1, ln2_w, ln2_b, ws, name + ".ln2")  # (B, T, C)
    f, c_fc = linear_forward(h2, fc_w, fc_b, ws, name + ".fc")  # (B, T, 4C)
    g, c_gelu = gelu_forward(f, ws, name + ".gelu")  # (B, T, 4C)
    mo, c_fcp = linear_forward(g, fcp_w, fcp_b, ws, name + ".fcp")  # (B, T, C)
    out = np.add(x1, mo, out=ws.get(name + ".out", x.shape))
    return out, (c_ln1, c_qkv, c_att, c_proj, c_ln2, c_fc, c_gelu, c_fcp)


def block_backward(dx, cache, ws, name):
    """dx (B, T, C) -> dx into the block, and its 12 gradients in BLOCK order."""
    c_ln1, c_qkv, c_att, c_proj, c_ln2, c_fc, c_gelu, c_fcp = cache
    dg, dfcp_w, dfcp_b = linear_backward(dx, c_fcp, ws, name + ".fcp")  # (B, T, 4C)
    df = gelu_backward(dg, c_gelu, ws, name + ".gelu")
    dh2, dfc_w, dfc_b = linear_backward(df, c_fc, ws, name + ".fc")  # (B, T, C)
    dxm, dln2_w, dln2_b = layernorm_backward(dh2, c_ln2, ws, name + ".ln2")
    dx1 = np.add(dx, dxm, out=ws.get(name + ".dx1", dx.shape))  # through the residual
    da, dproj_w, dproj_b = linear_backward(dx1, c_proj, ws, name + ".proj")  # (B, T, C)
    dqkv = attention_backward(da, c_att, ws, name + ".attn")  # (B, T, 3C)
    dh1, dattn_w, dattn_b = linear_backward(dqkv, c_qkv, ws, name + ".qkv")
    dxa, dln1_w, dln1_b = layernorm_backward(dh1, c_ln1, ws, name + ".ln1")
    grads = [
        dln1_w,
        dln1_b,
        dattn_w,
        dattn_b,
        dproj_w,
        dproj_b,
        dln2_w,
        dln2_b,
        dfc_w,
        dfc_b,
        dfcp_w,
        dfcp_b,
    ]
    return np.add(dx1, dxa, out=ws.get(name + ".dx", dx.shape)), grads


def gpt_forward(params, idx, targets, cfg: GPTConfig, ws: Workspace | None = None):
    """Loss and cache. params in model.param_names order."""
    ws = ws or Workspace(params[0].dtype)
    wte, wpe = params[0], params[1]
    nb = len(BLOCK)
    x, c_emb = embedding_forward(idx, wte, wpe, ws)  # (B, T, C)
    c_blocks = []
    for layer in range(cfg.n_layer):
        x, c = block_forward(
            x, params[2 + layer * nb : 2 + (layer + 1) * nb], cfg.n_head, ws, f"h{layer}"
        )
        c_blocks.append(c)
    xf, c_lnf = layernorm_forward(x, params[-2], params[-1], ws, "lnf")  # (B, T, C)
    # (B, T, V): tied head
    logits = np.matmul(xf, wte.T, out=ws.get("logits", (*idx.shape, cfg.vocab)))
    loss, c_xent = xent_forward(logits, targets, ws)
    return loss, (c_emb, c_blocks, xf, c_lnf, c_xent, ws)


def gpt_backward(params, cache, cfg: GPTConfig):
    """Gradients in params order (arrays of the forward's Workspace)."""
    c_emb, c_blocks, xf, c_lnf, c_xent, ws = cache
    wte = params[0]
    dlogits = xent_backward(c_xent, ws)  # (B, T, V)
    dwte = np.matmul(
        dlogits.reshape(-1, cfg.vocab).T, xf.reshape(-1, cfg.n_embd), out=ws.get("dwte", wte.shape)
    )
    dxf = np.matmul(dlogits, wte, out=ws.get("dxf", xf.shape))  # (B, T, C)
    dx, dlnf_w, dlnf_b = layernorm_backward(dxf, c_lnf, ws, "lnf")
    block_grads = []
    for layer in reversed(range(len(c_blocks))):
        dx, g = block_backward(dx, c_blocks[layer], ws, f"h{layer}")
        block_grads = g + block_grads
    dwpe = ws.get("dwpe", params[1].shape)
    embedding_backward(dx, c_emb, dwte, dwpe)  # dwte: the head's gradient plus the embedding's
    return [dwte, dwpe] + block_grads + [dlnf_w, dlnf_b]


def adamw_update(params, grads, moments, t, cfg: GPTConfig, decay, ws: Workspace | None = None):
    """AdamW in place, as torch.optim.AdamW: p *= 1 - lr wd (decayed tensors only), then
    p -= lr * m_hat / (sqrt(v_hat) + eps), with bias-corrected moments (m, v) at step t (from 1)."""
    m, v = moments
    ws = ws or Workspace(params[0].dtype)
    bc1, bc2 = 1.0 - cfg.beta1**t, 1.0 - cfg.beta2**t
    for i, (p, g, mi, vi, d) in enumerate(zip(params, grads, m, v, decay, strict=True)):
        tmp = ws.get(f"adamw{i}", p.shape)
        mi *= cfg.beta1
        mi += np.multiply(g, 1.0 - cfg.beta1, out=tmp)
        vi *= cfg.beta2
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - cfg.beta2
        vi += tmp
        if d:
            p *= 1.0 - cfg.lr * cfg.weight_decay
        np.divide(vi, bc2, out=tmp)
        np.sqrt(tmp, out=tmp)
        tmp += cfg.eps
        np.divide(mi, tmp, out=tmp)
        tmp *= cfg.lr / bc1
        p -= tmp


class GPTState:
    """Parameters, AdamW moments, step count and the workspace; `step()` is one training step."""

    def __init__(self, cfg: GPTConfig, params: list[np.ndarray]) -> None:
        self.cfg, self.params = cfg, params
        self.decay = decay_mask(cfg)
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0
        self.ws = Workspace(params[0].dtype)

    def step(self, idx, targets) -> float:
        loss, cache = gpt_forward(self.params, idx, targets, self.cfg, self.ws)
        grads = gpt_backward(self.params, cache, self.cfg)
        self.t += 1
        adamw_update(self.params, grads, (self.m, self.v), self.t, self.cfg, self.decay, self.ws)
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
    op_unit = "layer-function calls"

    def __init__(self, cfg: GPTConfig) -> None:
        self.cfg = cfg
        self.idx, self.targets = make_batch(cfg)
        self.init = init_params(cfg)
        self.state = GPTState(cfg, [p.copy() for p in self.init])

    def call(self) -> None:
        self.state.step(self.idx, self.targets)

    def losses(self, n: int) -> np.ndarray:
        return np.array([self.state.step(self.idx, self.targets) for _ in range(n)])

    def params(self) -> list[np.ndarray]:
        return [p.copy() for p in self.state.params]

    def count_ops(self) -> int:
        return ops_per_step(self.cfg)  # layer functions: the model's own op count

    def describe(self) -> dict:
        return {}

    def reset(self) -> None:
        for p, p0, m, v in zip(
            self.state.params, self.init, self.state.m, self.state.v, strict=True
        ):
            p[...], m[...], v[...] = p0, 0, 0
        self.state.t = 0


def build(cfg: GPTConfig, steps_per_call: int = 1, device: str = "cpu") -> NumpyGPTStep:
    return NumpyGPTStep(cfg)
