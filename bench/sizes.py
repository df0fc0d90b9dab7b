"""Size presets: which model configurations a run measures."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from models.registry import model_module

# Rounds (one worker process each: the unit of replication) and sampling seconds per case and
# round, per preset. More processes matter more than more samples: at 8 processes a Welch test on
# the log process medians holds its false-positive rate and finds a 10% slowdown
# (tests/test_statistics.py), and the default MLP sweep fits in about 10 minutes on 2 cores.
DEFAULT_ROUNDS, QUICK_ROUNDS = 5, 6  # base rounds: every case gets these ...
DEFAULT_MAX_ROUNDS = 32  # ... and a case whose CI is still wide gets extra ones, up to this many in all
DEFAULT_BUDGET_S, QUICK_BUDGET_S = 0.05, 0.03
DEFAULT_BUDGET_MIN = {"mlp": 10.0, "gpt": 15.0}  # the default sweep's time goal on the 2-core reference VM
# Each case's sampling in a process in this many turns, the process's other cases taking theirs in
# between (bench/sweep/plan.chunked): at a busy hour it cut the spread between processes by a third
# in every case of results/noise_study_chunks (scripts/noise_study_chunks.sh).
DEFAULT_CHUNKS = 5


# Implementations a default sweep leaves out unless --impl names them (or says all), with why.
DEFAULT_LEFT_OUT = {
    "gpt": {"torch.scan": "its compile (6 to 36 s per GPT size on the 2-core VM) is paid again in every worker "
                          "process, since torch 2.13's FX graph and AOTAutograd caches bypass the scan operator; at 5 "
                          "rounds its first calls alone take about 9 of the sweep's 15 minutes"},
}


@dataclass(frozen=True)
class PresetDefaults:
    rounds: int
    max_rounds: int
    budget_s: float  # sampling seconds per case and round
    budget_min: float | None  # no extra round past this estimated run time
    left_out: dict[str, str] = field(default_factory=dict)  # impl -> why, unless --impl is given
    chunks: int = DEFAULT_CHUNKS  # sampling turns per case and process


def preset_defaults(sizes_text: str, model: str = "mlp") -> PresetDefaults:
    """What a run of this --sizes gets unless told otherwise: quick runs no extra round; the default
    sweep adds them within its time goal (and may leave out a costly implementation); a custom
    sweep adds them with no time limit."""
    if sizes_text == "quick":
        return PresetDefaults(QUICK_ROUNDS, QUICK_ROUNDS, QUICK_BUDGET_S, None)
    if sizes_text != "default":
        return PresetDefaults(DEFAULT_ROUNDS, DEFAULT_MAX_ROUNDS, DEFAULT_BUDGET_S, None)
    return PresetDefaults(DEFAULT_ROUNDS, DEFAULT_MAX_ROUNDS, DEFAULT_BUDGET_S, DEFAULT_BUDGET_MIN.get(model),
                          dict(DEFAULT_LEFT_OUT.get(model, {})))


# Largest accepted dimensions for a custom size: beyond these a CPU step takes minutes or more
# (the memory estimate refuses what does not fit anyway).
MAX_DIM = 16384
MAX_DEPTH = 256


@dataclass(frozen=True)
class Size:
    model: str  # "mlp" or "gpt"
    dims: tuple[tuple[str, int], ...]  # the model Config's fields that differ from its defaults
    sweep: str  # "width", "depth" or "custom"

    def config(self):
        return model_module(self.model).Config(**dict(self.dims))

    @property
    def label(self) -> str:
        return self.config().label

    def steps_per_call(self) -> int:
        """Steps fused per call (jax.scan, c.ref): enough to amortise the call (about 1 GFLOP per
        call), at least 2, at most 64."""
        f = model_module(self.model).flops_per_step(self.config())
        return int(min(64, max(2, 2 ** math.floor(math.log2(1e9 / f)))))

    def to_json(self) -> dict:
        return {"model": self.model, "dims": dict(self.dims), "sweep": self.sweep, "label": self.label,
                "steps_per_call": self.steps_per_call()}

    @classmethod
    def from_json(cls, d: dict) -> Size:
        return cls(d["model"], tuple(d["dims"].items()), d["sweep"])


def mlp(batch: int, width: int, depth: int, sweep: str) -> Size:
    return Size("mlp", (("batch", batch), ("width", width), ("depth", depth)), sweep)


def gpt(batch: int, seq_len: int, n_embd: int, n_layer: int, n_head: int, sweep: str, vocab: int = 512) -> Size:
    return Size("gpt", (("batch", batch), ("seq_len", seq_len), ("n_embd", n_embd), ("n_layer", n_layer),
                        ("n_head", n_head), ("vocab", vocab)), sweep)


PRESETS: dict[str, dict[str, list[Size]]] = {
    "mlp": {
        # seconds: the smallest model and a small one
        "quick": [mlp(1, 1, 2, "width"), mlp(32, 64, 2, "width")],
        # width sweep B = H from dispatch-bound to compute-bound (B1024-H1024: 9.8 GFLOP per step),
        # then a depth sweep at tiny width for the cost per op; its L=2 point is B8-H8-L2 above
        "default": [mlp(b, b, 2, "width") for b in (1, 8, 32, 128, 256, 512, 1024)]
        + [mlp(8, 8, d, "depth") for d in (1, 4, 8, 16)],
        # for a large GPU: launch-bound at the small end, compute-bound at B = H = 8192
        # (3.51 TFLOP per step), depth sweep at tiny width for the cost per launch
        "gpu": [mlp(b, b, 2, "width") for b in (1, 64, 256, 1024, 2048, 4096, 8192)]
        + [mlp(8, 8, d, "depth") for d in (1, 4, 8, 16)],
    },
    "gpt": {
        "quick": [gpt(2, 16, 32, 1, 2, "width", vocab=64), gpt(2, 24, 64, 2, 4, "width", vocab=128)],
        # width sweep from ~0.1 M parameters to > 1 GFLOP per step, at 2 layers and T = 64;
        # depth sweep at tiny width (n_embd 32), its n_layer = 2 point is the first width size
        "default": [gpt(4, 64, c, 2, h, "width") for c, h in ((32, 2), (64, 4), (128, 4), (256, 8), (384, 6))]
        + [gpt(4, 64, 32, n, 2, "depth") for n in (1, 4, 8)],
        # for a large GPU: up to C = 2048, T = 256, 4 layers (2.5 TFLOP per step)
        "gpu": [gpt(8, 256, c, 4, h, "width") for c, h in ((64, 4), (256, 4), (512, 8), (1024, 16), (2048, 16))]
        + [gpt(1, 16, 32, n, 2, "depth") for n in (1, 2, 4, 8)],
    },
}

_CUSTOM = {"mlp": (re.compile(r"^(\d+)x(\d+)x(\d+)$"), "BxHxL", ("batch", "width", "depth")),
           "gpt": (re.compile(r"^(\d+)x(\d+)x(\d+)x(\d+)x(\d+)$"), "BxTxCxLxNH",
                   ("batch", "seq_len", "n_embd", "n_layer", "n_head"))}


def parse_sizes(text: str, model: str = "mlp") -> list[Size]:
    """A preset name, or comma-separated custom sizes (BxHxL for mlp, BxTxCxLxNH for gpt).
    ValueError naming the problem if bad."""
    if text in PRESETS[model]:
        return PRESETS[model][text]
    pattern, form, fields = _CUSTOM[model]
    sizes = []
    for part in text.split(","):
        part = part.strip()
        m = pattern.match(part)
        if not m:
            raise ValueError(f"unknown size {part!r} for {model}: use a preset ({', '.join(PRESETS[model])}) "
                             f"or {form} values such as {'1x1x2,64x256x2' if model == 'mlp' else '2x16x32x1x2'}")
        vals = dict(zip(fields, (int(g) for g in m.groups()), strict=True))
        for name, v in vals.items():
            hi = MAX_DEPTH if name in ("depth", "n_layer") else MAX_DIM
            if not 1 <= v <= hi:
                raise ValueError(f"size {part}: {name} {v} is outside 1..{hi}")
        try:
            model_module(model).Config(**vals)
        except ValueError as e:
            raise ValueError(f"size {part}: {e}") from None
        sizes.append(Size(model, tuple(vals.items()), "custom"))
    if len({s.label for s in sizes}) != len(sizes):
        raise ValueError(f"size list {text!r} names a size twice")
    return sizes
