"""The MLP benchmark model: config, seeded parameters and data, FLOP count, gate tolerances.

This is the one place where the model is defined. Every implementation loads the float32 arrays
made here, so all of them start from the same point, and the equivalence gate compares them with
`numpy_impl.reference()` (the NumPy model run in float64).

Layout: weights are stored (in, out) so a layer is `x @ W + b`; frameworks that store (out, in)
(torch.nn.Linear) transpose on load and on export.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.gate import compare_to_reference


@dataclass(frozen=True)
class MLPConfig:
    batch: int = 64  # B: examples in the fixed training batch
    d_in: int = 784  # D: input features (MNIST-sized)
    width: int = 256  # H: units in every hidden layer
    depth: int = 2  # L: hidden layers (L >= 1), so L + 1 linear layers in all
    classes: int = 10  # C: output classes
    lr: float = 0.01  # plain SGD learning rate
    seed: int = 0  # seeds the parameters and the batch

    def __post_init__(self) -> None:
        for name in ("batch", "d_in", "width", "depth", "classes"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def layer_dims(self) -> list[tuple[int, int]]:
        """(fan_in, fan_out) of each linear layer: D->H, (L-1) x H->H, H->C."""
        dims = [(self.d_in, self.width)]
        dims += [(self.width, self.width)] * (self.depth - 1)
        dims.append((self.width, self.classes))
        return dims

    @property
    def label(self) -> str:
        return f"B{self.batch}-H{self.width}-L{self.depth}"


def init_params(cfg: MLPConfig) -> list[np.ndarray]:
    """He-normal weights (in, out) and zero biases, float32: [W0, b0, W1, b1, ...]."""
    rng = np.random.default_rng(cfg.seed)
    params: list[np.ndarray] = []
    for fan_in, fan_out in cfg.layer_dims():
        w = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)  # (in, out)
        params += [w.astype(np.float32), np.zeros(fan_out, np.float32)]
    return params


def make_batch(cfg: MLPConfig) -> tuple[np.ndarray, np.ndarray]:
    """Fixed synthetic batch: x (B, D) standard normal float32, y (B,) int64 labels in [0, C)."""
    rng = np.random.default_rng(cfg.seed + 1)
    x = rng.standard_normal((cfg.batch, cfg.d_in)).astype(np.float32)  # (B, D)
    y = rng.integers(0, cfg.classes, size=cfg.batch).astype(np.int64)  # (B,)
    return x, y


def flops_per_step(cfg: MLPConfig) -> int:
    """Matrix-product FLOPs of one training step (2 per multiply-add).

    Per linear layer (in, out): forward 2*B*in*out, weight gradient 2*B*in*out, input gradient
    2*B*in*out, except the first layer, whose input (the data) needs no gradient. Bias, ReLU,
    softmax and the SGD update are O(B*H + params) and are not counted, as is usual for model FLOPs.
    """
    b = cfg.batch
    total = sum(6 * b * fi * fo for fi, fo in cfg.layer_dims())
    return total - 2 * b * cfg.d_in * cfg.width


def other_flops_per_step(cfg: MLPConfig) -> int:
    """FLOPs outside the matrix products, an estimate counted from numpy_impl.py: per layer the
    bias add and bias gradient (2 B out), per hidden layer ReLU forward and backward (2 B H),
    softmax and cross-entropy forward and backward (about 8 B C), and the SGD update (2 per
    parameter). They do not grow with width as B H^2 does, so a fit of t = a + FLOPs / r puts
    them in a."""
    b = cfg.batch
    bias = sum(2 * b * fo for _, fo in cfg.layer_dims())
    return bias + 2 * b * cfg.width * cfg.depth + 8 * b * cfg.classes + 2 * n_params(cfg)


def bytes_per_step(cfg: MLPConfig) -> int:
    """Bytes one step moves, an estimate: float32 parameters read forward and backward, gradients
    written, SGD reading both and writing the parameters (6 x 4 bytes per parameter), and every
    activation (the batch, each layer's output, softmax) written once and read twice (3 x 4)."""
    acts = cfg.batch * (cfg.d_in + 2 * cfg.depth * cfg.width + 3 * cfg.classes)
    return 4 * (6 * n_params(cfg) + 3 * acts)


def ops_per_step(cfg: MLPConfig) -> int:
    """Layer ops of one step, the one definition of an "op" that every implementation's row
    shares: each layer's forward and backward (n = L + 1 linear layers, L ReLUs, the loss), and
    the update of each parameter tensor (2n). Per-op costs divide by this."""
    n = cfg.depth + 1
    return 2 * (n + cfg.depth + 1) + 2 * n


def n_params(cfg: MLPConfig) -> int:
    return sum(fi * fo + fo for fi, fo in cfg.layer_dims())


def memory_bytes(cfg: MLPConfig) -> int:
    """Rough upper bound of what one case holds in its worker, in bytes.

    float32 in the framework: parameters, gradients, the initial copy and the optimizer's or
    framework's own copy (4 x 4 bytes per parameter); activations and their gradients, with
    buffers (3 x 4 bytes per activation). The float64 reference of the gate: parameters,
    gradients, initial copy (3 x 8) and activations (3 x 8).
    """
    acts = cfg.batch * (cfg.d_in + 2 * cfg.depth * cfg.width + 2 * cfg.classes)
    return n_params(cfg) * (16 + 24) + acts * (12 + 24)


# Tolerances of the equivalence gate, stated once. Float32 has a unit roundoff of 6e-8; a dot
# product of length n accumulates about sqrt(n) of those with random signs, and a few SGD steps
# compound them: observed loss errors are 1e-8..3e-7, update errors 1e-6..3e-4.
# One effect is larger: a pre-activation within rounding of 0 can land on the other side of the
# ReLU kink in float32, switching one example's contribution to one unit. How often depends on
# B x H and on each library's summation order: at B512-H512 JAX's updates of W0 differed by
# 1.0e-3 (two units), torch's by 3e-5. Hence 1e-2 on updates; a real bug (wrong learning rate,
# sign, transpose, missing term) gives 1e-1..1. The tests hold small sizes, where no kink flips,
# to a tenth of these (tests/test_equivalence.py).
LOSS_RTOL = 1e-4  # |loss - ref| / |ref| per step
UPDATE_RTOL = (
    1e-2  # ||(p - p0) - (ref - p0)|| / ||ref - p0|| per tensor: the SGD updates themselves
)


def compare(cfg: MLPConfig, losses, params, ref) -> tuple[float, float, str]:
    """Gate: (max loss rel. error, max update rel. error, '' if within tolerance else why not).
    ref: (losses, params) of the float64 reference (numpy_impl.reference)."""
    return compare_to_reference(init_params(cfg), losses, params, ref, LOSS_RTOL, UPDATE_RTOL)


def describe(cfg: MLPConfig) -> dict:
    """The size columns of a results row."""
    return {
        "batch": cfg.batch,
        "width": cfg.width,
        "depth": cfg.depth,
        "d_in": cfg.d_in,
        "classes": cfg.classes,
    }


Config = MLPConfig
