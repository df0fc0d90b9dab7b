"""MLP in NumPy: forward and backward by hand, SGD in place (registry name `numpy.loop`).

Each layer is a pair `<layer>_forward(...) -> (out, cache)` / `<layer>_backward(dout, cache)`,
as in llm.c. The functions work in any float dtype: `reference` runs them in float64
(allocating), `NumpyStep` runs them in float32 with every buffer preallocated (`out=`), so a
step allocates nothing of size B x H.
"""

from __future__ import annotations

import numpy as np

from .model import MLPConfig, init_params, make_batch


def linear_forward(x, w, b, out=None):
    """x (B, in) @ w (in, out) + b (out,) -> z (B, out)."""
    z = np.matmul(x, w, out=out)  # (B, out)
    z += b
    return z, (x, w)


def linear_backward(
    dz, cache, dw=None, db=None, dx=None, need_dx=True
):  # pragma: no mutate (every caller passes need_dx)
    """dz (B, out) -> dx (B, in) or None, dw (in, out), db (out,)."""
    x, w = cache
    dw = np.matmul(x.T, dz, out=dw)  # (in, B) @ (B, out) -> (in, out)
    db = np.sum(dz, axis=0, out=db)  # (out,)
    dx = np.matmul(dz, w.T, out=dx) if need_dx else None  # (B, out) @ (out, in) -> (B, in)
    return dx, dw, db


def relu_forward(z, out=None):
    """max(z, 0) (B, H); the output is its own cache (h > 0 iff z > 0)."""
    h = np.maximum(z, 0, out=out)  # (B, H)
    return h, h


def relu_backward(dh, h, mask=None):
    """dz = dh * (h > 0), written into dh. mask: optional (B, H) bool buffer."""
    mask = np.greater(h, 0, out=mask)  # (B, H)
    return np.multiply(dh, mask, out=dh)  # (B, H)


def softmax_xent_forward(logits, y, out=None):
    """Mean cross-entropy of softmax(logits (B, C)) against labels y (B,); cache = (probs, y)."""
    p = np.subtract(logits, logits.max(axis=1, keepdims=True), out=out)  # (B, C), max is 0
    np.exp(p, out=p)
    p /= p.sum(axis=1, keepdims=True)  # probs (B, C)
    rows = np.arange(y.shape[0])
    loss = -np.mean(np.log(p[rows, y]))
    return float(loss), (p, y)


def softmax_xent_backward(cache, out=None):
    """dlogits (B, C) = (probs - onehot(y)) / B."""
    p, y = cache
    d = np.empty_like(p) if out is None else out  # (B, C)
    np.copyto(d, p)
    d[np.arange(y.shape[0]), y] -= 1.0
    d /= y.shape[0]
    return d


def mlp_forward(params, x, y, bufs=None):
    """Loss and cache of the MLP. params [W0, b0, ...]; x (B, D); y (B,)."""
    n = len(params) // 2
    h, caches = x, []
    for i in range(n):
        z, lin = linear_forward(h, params[2 * i], params[2 * i + 1], bufs and bufs["z"][i])
        if i < n - 1:
            h, _ = relu_forward(z, out=z)  # (B, H), in place over z
        caches.append(lin)
    loss, xent = softmax_xent_forward(z, y, out=bufs and bufs["probs"])  # z: logits (B, C)
    return loss, (caches, xent)


def mlp_backward(params, cache, bufs=None):
    """Gradients [dW0, db0, ...] in the layout of params."""
    caches, xent = cache
    n = len(caches)
    grads = bufs["grads"] if bufs else [None] * len(params)
    dz = softmax_xent_backward(xent, out=bufs and bufs["dlogits"])  # (B, C)
    for i in reversed(range(n)):
        dx, grads[2 * i], grads[2 * i + 1] = linear_backward(
            dz,
            caches[i],
            grads[2 * i],
            grads[2 * i + 1],
            dx=bufs and bufs["dh"][i - 1],
            need_dx=i > 0,
        )
        if i > 0:
            h_in = caches[i][0]  # ReLU output that fed layer i, (B, H)
            dz = relu_backward(dx, h_in, mask=bufs and bufs["mask"])  # (B, H)
    return grads


def numpy_calls_per_step(cfg: MLPConfig) -> int:
    """NumPy calls in one `NumpyStep` step, counted from the code above (n = L + 1 layers):
    forward 2n (matmul, +=) + (n - 1) relu + 9 in softmax/cross-entropy; backward 4 in the
    loss, 2n (dW, db) + 3 (n - 1) (dx, mask, multiply); update 2 per tensor = 4n."""
    n = cfg.depth + 1
    return 2 * n + (n - 1) + 9 + 4 + 2 * n + 3 * (n - 1) + 4 * n


def mlp_update(params, grads, lr):
    """Plain SGD in place: p -= lr * g (g is scaled in place; it is rewritten next step)."""
    for p, g in zip(
        params, grads, strict=True
    ):  # pragma: no mutate (one gradient per tensor: same length)
        g *= lr
        p -= g


def reference(cfg: MLPConfig, steps: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Float64 run of `steps` SGD steps from the shared start: (losses (steps,), final params).
    The equivalence gate's truth: the functions above, dtype-generic, in float64."""
    # pragma: no mutate (astype(None) is float64 too)
    params = [p.astype(np.float64) for p in init_params(cfg)]
    x, y = make_batch(cfg)
    x = x.astype(np.float64)  # pragma: no mutate (astype(None) is float64 too)
    losses = np.empty(steps)
    for i in range(steps):
        losses[i], cache = mlp_forward(params, x, y)
        grads = mlp_backward(params, cache)
        mlp_update(params, grads, cfg.lr)
    return losses, params


class NumpyStep:
    """numpy.loop: one step = forward, backward, update on preallocated float32 buffers."""

    steps_per_call = 1
    gate = True
    op_unit = "NumPy calls"

    def __init__(self, cfg: MLPConfig, params: list[np.ndarray], batch) -> None:
        self.cfg = cfg
        self.init = [p.copy() for p in params]
        self.p = [p.copy() for p in params]
        self.x, self.y = batch
        b, dims = cfg.batch, cfg.layer_dims()
        self.bufs = {
            "z": [np.empty((b, fo), np.float32) for _, fo in dims],  # pre-activations / h
            "probs": np.empty((b, cfg.classes), np.float32),
            "dlogits": np.empty((b, cfg.classes), np.float32),
            "dh": [np.empty((b, fo), np.float32) for _, fo in dims[:-1]],
            "mask": np.empty((b, cfg.width), bool),
            "grads": [np.empty_like(p) for p in params],
        }
        self.last_loss = float("nan")  # pragma: no mutate (before any step: read by no number)

    def _step(self) -> float:
        loss, cache = mlp_forward(self.p, self.x, self.y, self.bufs)
        # pragma: no mutate (with buffers, mlp_backward reads no parameter)
        grads = mlp_backward(self.p, cache, self.bufs)
        mlp_update(self.p, grads, self.cfg.lr)
        return loss

    def call(self) -> None:
        self.last_loss = self._step()

    def losses(self, n: int) -> np.ndarray:
        return np.array([self._step() for _ in range(n)])

    def params(self) -> list[np.ndarray]:
        return [p.copy() for p in self.p]

    def count_ops(self) -> int:
        return numpy_calls_per_step(self.cfg)

    def describe(self) -> dict:
        return {}

    def reset(self) -> None:
        for p, p0 in zip(
            self.p, self.init, strict=True
        ):  # pragma: no mutate (copies of one list: same length)
            p[...] = p0


def build(
    cfg: MLPConfig, steps_per_call: int = 1, device: str = "cpu"
) -> NumpyStep:  # pragma: no mutate (one step per call on the CPU whatever is asked)
    return NumpyStep(cfg, init_params(cfg), make_batch(cfg))
