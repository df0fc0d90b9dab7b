"""What the pipeline probe (bench/pipeline/) needs of the GPT: its default probe config, how many
units it splits into stages, the activation shape between stages, the tied parameter (the token
embedding, which the last stage's head also uses), the float64 reference gradients, and the
torch stages and loss (models/gpt/torch_impl.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import numpy_impl
from .model import GPTConfig, init_params, make_batch

CONFIG = {"batch": 16, "seq_len": 64, "n_embd": 128, "n_layer": 4, "n_head": 4}  # 4 blocks to split
TIED: tuple[int, ...] = (0,)  # wte: the first stage embeds with it, the last projects with its copy
TORCH_STAGES = f"{__package__}.torch_impl:pipeline_stages"  # (cfg, n) -> [(module, [(index, tensor, transposed)])]
TORCH_LOSS = f"{__package__}.torch_impl:pipeline_loss"  # (logits, targets) -> mean loss over tokens
JAX_STAGES = (
    f"{__package__}.jax_impl:pipeline_stages"  # (cfg, n) -> [(fn(params, inp) -> out, [index])]
)
JAX_LOSS = f"{__package__}.jax_impl:pipeline_loss"
C_STAGE = Path(__file__).with_name("gpt_pipe.c")  # the stage of the C pipeline (models/cpipe.c)


def n_units(cfg: GPTConfig) -> int:
    """Transformer blocks: the most stages the GPT can be cut into."""
    return cfg.n_layer


def boundary_shape(cfg: GPTConfig, rows: int) -> tuple[int, ...]:
    """The activation between two stages for a microbatch of `rows` sequences."""
    return (rows, cfg.seq_len, cfg.n_embd)  # (b, T, C)


def reference_grads(cfg: GPTConfig) -> list[np.ndarray]:
    """The float64 gradients of the full-batch loss at the shared start, in param_names' order."""
    params = [p.astype(np.float64) for p in init_params(cfg)]
    x, y = make_batch(cfg)
    _, cache = numpy_impl.gpt_forward(params, x, y, cfg)
    return [g.copy() for g in numpy_impl.gpt_backward(params, cache, cfg)]


def c_dims(cfg) -> list[int]:
    """The dims the C stage (C_STAGE) takes."""
    return [cfg.batch, cfg.seq_len, cfg.n_embd, cfg.n_layer, cfg.n_head, cfg.vocab, 1]
