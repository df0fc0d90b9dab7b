"""The C + BLAS MLP (mlp.c beside this file), built with the machine's C compiler on first use
(models/cbuild.py: compiled against scipy-openblas32, cached by source, flags and compiler).

`c.ref` runs K steps in one call (no Python between steps: the floor); `c.step` one call per
step (adds the cost of crossing from Python into C through ctypes).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from models import cbuild

from .model import MLPConfig, init_params, make_batch

SOURCE = Path(__file__).with_name("mlp.c")


def _declare(lib: ctypes.CDLL) -> None:
    p = ctypes.c_void_p
    lib.mlp_train.argtypes = [p, ctypes.c_float, p, p, p, p, p, ctypes.c_int, p]
    lib.mlp_train.restype = ctypes.c_int


def load() -> ctypes.CDLL:
    return cbuild.load(SOURCE, _declare)


def layer_calls_per_step(cfg: MLPConfig) -> int:
    """Layer-function calls in one C step (n = L + 1 layers): n linear + L relu + softmax forward;
    softmax backward + n linear + L relu backward; one update."""
    n = cfg.depth + 1
    return 2 * n + 2 * cfg.depth + 3


class CStep(cbuild.FlatTrainer):
    def __init__(self, cfg: MLPConfig, steps_per_call: int) -> None:
        self.cfg, self.steps_per_call = cfg, steps_per_call
        self.lib = load()
        self.init = init_params(cfg)
        self.flat0 = np.concatenate([p.ravel() for p in self.init])  # [W0, b0, W1, b1, ...]
        self.flat = self.flat0.copy()
        self.grads = np.zeros_like(self.flat)
        b, dims = cfg.batch, cfg.layer_dims()
        n_acts = sum(b * fo for _, fo in dims) + 2 * b * cfg.classes + cfg.depth * b * cfg.width
        self.acts = np.zeros(n_acts, np.float32)  # z_i, probs, dlogits, dh_i (see mlp.c)
        x, y = make_batch(cfg)
        self.x, self.y = np.ascontiguousarray(x), np.ascontiguousarray(y, np.int64)  # (B, D), (B,)
        self.dims = np.array([b, cfg.d_in, cfg.width, cfg.depth, cfg.classes], np.int32)
        self.loss_buf = np.empty(max(steps_per_call, 1), np.float32)
        self.train = self.lib.mlp_train
        self.args = (
            [a.ctypes.data for a in (self.dims,)]
            + [cfg.lr]
            + [a.ctypes.data for a in (self.flat, self.grads, self.acts, self.x, self.y)]
        )

    def count_ops(self) -> int:
        return layer_calls_per_step(self.cfg)

    def describe(self) -> dict:
        return {}

    def reset(self) -> None:
        self.flat[...] = self.flat0


def build_ref(cfg: MLPConfig, steps_per_call: int = 1, device: str = "cpu") -> CStep:
    return CStep(cfg, steps_per_call)


def build_step(cfg: MLPConfig, steps_per_call: int = 1, device: str = "cpu") -> CStep:
    return CStep(cfg, 1)
