"""Size presets: which model configurations a run measures."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from models.mlp import MLPConfig, flops_per_step

# Largest accepted dimensions for a custom size: beyond these a step on a CPU takes minutes.
MAX_BATCH, MAX_WIDTH, MAX_DEPTH = 16384, 16384, 256


@dataclass(frozen=True)
class Size:
    batch: int
    width: int
    depth: int
    sweep: str  # "width", "depth" or "custom"

    def config(self) -> MLPConfig:
        return MLPConfig(batch=self.batch, width=self.width, depth=self.depth)

    @property
    def label(self) -> str:
        return self.config().label

    def scan_k(self) -> int:
        """Steps fused per jax.scan call: enough to amortise the call (about 1 GFLOP per call),
        at least 2, at most 64."""
        f = flops_per_step(self.config())
        return int(min(64, max(2, 2 ** math.floor(math.log2(1e9 / f)))))


def _width_sweep(pairs, depth=2):
    return [Size(b, h, depth, "width") for b, h in pairs]


PRESETS: dict[str, list[Size]] = {
    # seconds: the smallest model and a small one
    "quick": _width_sweep([(1, 1), (32, 64)]),
    # width sweep B = H from dispatch-bound to compute-bound (B1024-H1024: 9.8 GFLOP per step),
    # then a depth sweep at tiny width for the cost per op
    "default": _width_sweep([(1, 1), (8, 8), (32, 32), (128, 128), (256, 256), (512, 512), (1024, 1024)])
    + [Size(8, 8, d, "depth") for d in (1, 4, 8, 16)],
}
# B8-H8-L2 of the width sweep doubles as the depth sweep's L=2 point (see bench.analysis).

_CUSTOM = re.compile(r"^(\d+)x(\d+)x(\d+)$")


def parse_sizes(text: str) -> list[Size]:
    """A preset name, or comma-separated BxHxL triples such as 1x1x2,64x256x2. ValueError if bad."""
    if text in PRESETS:
        return PRESETS[text]
    sizes = []
    for part in text.split(","):
        m = _CUSTOM.match(part.strip())
        if not m:
            raise ValueError(
                f"unknown size {part.strip()!r}: use a preset ({', '.join(PRESETS)}) "
                "or BxHxL triples such as 1x1x2,64x256x2"
            )
        b, h, d = (int(g) for g in m.groups())
        for name, v, hi in (("batch", b, MAX_BATCH), ("width", h, MAX_WIDTH), ("depth", d, MAX_DEPTH)):
            if not 1 <= v <= hi:
                raise ValueError(f"size {part.strip()}: {name} {v} is outside 1..{hi}")
        sizes.append(Size(b, h, d, "custom"))
    if len({s.label for s in sizes}) != len(sizes):
        raise ValueError(f"size list {text!r} names a size twice")
    return sizes
