"""What the pipeline probe (bench/pipeline/) needs of the MLP: its default probe config, how many
units it splits into stages, the activation shape between stages, the tied parameters (none),
the float64 reference gradients, and the torch stages and loss (models/mlp/torch_impl.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import numpy_impl
from .model import MLPConfig, init_params, make_batch

CONFIG = {"batch": 128, "width": 256, "depth": 7}  # 8 linear layers to split
TIED: tuple[int, ...] = ()  # parameter indices held by two stages: none
TORCH_STAGES = f"{__package__}.torch_impl:pipeline_stages"  # (cfg, n) -> [(module, [(index, tensor, transposed)])]
TORCH_LOSS = f"{__package__}.torch_impl:pipeline_loss"  # (logits, targets) -> mean loss
JAX_STAGES = (
    f"{__package__}.jax_impl:pipeline_stages"  # (cfg, n) -> [(fn(params, inp) -> out, [index])]
)
JAX_LOSS = f"{__package__}.jax_impl:pipeline_loss"
C_STAGE = Path(__file__).with_name("mlp_pipe.c")  # the stage of the C pipeline (models/cpipe.c)


def n_units(cfg: MLPConfig) -> int:
    """Linear layers: the most stages the MLP can be cut into."""
    return cfg.depth + 1


def boundary_shape(cfg: MLPConfig, rows: int) -> tuple[int, ...]:
    """The activation between two stages for a microbatch of `rows` examples."""
    return (rows, cfg.width)  # (b, H)


def reference_grads(cfg: MLPConfig) -> list[np.ndarray]:
    """The float64 gradients of the full-batch loss at the shared start, in init_params' order."""
    params = [p.astype(np.float64) for p in init_params(cfg)]
    x, y = make_batch(cfg)
    _, cache = numpy_impl.mlp_forward(params, x.astype(np.float64), y)
    return [g.copy() for g in numpy_impl.mlp_backward(params, cache)]


def c_dims(cfg) -> list[int]:
    """The dims the C stage (C_STAGE) takes."""
    return [cfg.batch, cfg.d_in, cfg.width, cfg.depth, cfg.classes]
