"""The C + BLAS GPT (gpt.c beside this file), built with the machine's C compiler on first use
(models/cbuild.py: compiled against scipy-openblas32, cached by source, flags and compiler).

`c.ref` runs K steps in one call (no Python between steps: the floor); `c.step` one call per
step (adds the cost of crossing from Python into C through ctypes). NumPy owns every array: the
parameters (flat, in model.param_names order), gradients, AdamW moments, one activation buffer
and one activation-gradient buffer, all allocated here once.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from models import cbuild

from .model import GPTConfig, init_params, make_batch, ops_per_step

SOURCE = Path(__file__).with_name("gpt.c")
GEMM_ATTENTION = (
    1  # attention products as sgemm per (batch, head); 0: plain loops (README: figures)
)


def _declare(lib: ctypes.CDLL) -> None:
    p, i = ctypes.c_void_p, ctypes.c_int
    lib.gpt_num_params.argtypes = lib.gpt_num_acts.argtypes = [p]
    lib.gpt_num_params.restype = lib.gpt_num_acts.restype = ctypes.c_size_t
    lib.gpt_train.argtypes = [p, p, p, p, p, p, p, p, p, p, p, i, p]
    lib.gpt_train.restype = i
    lib.gpt_forward_backward.argtypes = [p] * 7
    lib.gpt_forward_backward.restype = ctypes.c_float
    lib.gpt_adamw.argtypes = [p] * 7


def load(source: Path = SOURCE) -> ctypes.CDLL:
    return cbuild.load(source, _declare)


class CGPTStep(cbuild.FlatTrainer):
    def __init__(
        self,
        cfg: GPTConfig,
        steps_per_call: int,
        gemm_attention: int = GEMM_ATTENTION,
        source: Path = SOURCE,
    ) -> None:
        self.cfg, self.steps_per_call = cfg, steps_per_call
        self.lib = load(source)
        self.dims = np.array(
            [
                cfg.batch,
                cfg.seq_len,
                cfg.n_embd,
                cfg.n_layer,
                cfg.n_head,
                cfg.vocab,
                gemm_attention,
            ],
            np.int32,
        )
        self.hyper = np.array([cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay], np.float32)
        self.init = init_params(cfg)
        self.flat0 = np.concatenate([p.ravel() for p in self.init])
        if self.lib.gpt_num_params(self.dims.ctypes.data) != self.flat0.size:
            raise ValueError(
                f"gpt.c lays out {self.lib.gpt_num_params(self.dims.ctypes.data)} parameters, "
                f"the model has {self.flat0.size}"
            )
        self.flat, self.grads = self.flat0.copy(), np.zeros_like(self.flat0)
        self.m, self.v = np.zeros_like(self.flat0), np.zeros_like(self.flat0)
        n_acts = self.lib.gpt_num_acts(self.dims.ctypes.data)
        self.acts, self.dacts = np.zeros(n_acts, np.float32), np.zeros(n_acts, np.float32)
        idx, targets = make_batch(cfg)
        self.idx, self.targets = (
            np.ascontiguousarray(idx, np.int64),
            np.ascontiguousarray(targets, np.int64),
        )  # (B, T)
        self.t = np.zeros(1, np.int32)  # AdamW steps so far
        self.loss_buf = np.empty(max(steps_per_call, 1), np.float32)
        self.train = self.lib.gpt_train
        self.args = [
            a.ctypes.data
            for a in (
                self.dims,
                self.hyper,
                self.flat,
                self.grads,
                self.m,
                self.v,
                self.acts,
                self.dacts,
                self.idx,
                self.targets,
                self.t,
            )
        ]

    def gradients(self) -> tuple[float, list[np.ndarray]]:
        """(loss, every parameter's gradient) of one forward and backward pass, no update."""
        loss = self.lib.gpt_forward_backward(
            *[
                a.ctypes.data
                for a in (
                    self.dims,
                    self.flat,
                    self.grads,
                    self.acts,
                    self.dacts,
                    self.idx,
                    self.targets,
                )
            ]
        )
        return float(loss), self.unflatten(self.grads)

    def adamw(self) -> None:
        """One AdamW update with the gradients in place (after gradients())."""
        self.lib.gpt_adamw(
            *[
                a.ctypes.data
                for a in (self.dims, self.hyper, self.flat, self.grads, self.m, self.v, self.t)
            ]
        )

    def count_ops(self) -> int:
        return ops_per_step(self.cfg)  # layer functions: the model's own op count

    def describe(self) -> dict:
        return {"attention": "sgemm per (batch, head)" if self.dims[6] else "plain loops"}

    def reset(self) -> None:
        self.flat[...] = self.flat0
        self.m[...], self.v[...], self.t[...] = 0, 0, 0


def build_ref(cfg: GPTConfig, steps_per_call: int = 1, device: str = "cpu") -> CGPTStep:
    return CGPTStep(cfg, steps_per_call)


def build_step(cfg: GPTConfig, steps_per_call: int = 1, device: str = "cpu") -> CGPTStep:
    return CGPTStep(cfg, 1)
