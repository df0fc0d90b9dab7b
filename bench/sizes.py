"""Size presets: which model configurations a run measures."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from models.registry import MODELS, model_module, spec

# Rounds (one worker process each: the unit of replication) and sampling seconds per case and
# round, per preset. More processes matter more than more samples: at 8 processes a Welch test on
# the log process medians holds its false-positive rate and finds a 10% slowdown
# (tests/test_statistics.py), and the default MLP sweep fits in about 10 minutes on 2 cores.
DEFAULT_ROUNDS, QUICK_ROUNDS = 5, 6  # base rounds: every case gets these ...
DEFAULT_MAX_ROUNDS = (
    32  # ... and a case whose CI is still wide gets extra ones, up to this many in all
)
DEFAULT_BUDGET_S, QUICK_BUDGET_S = 0.05, 0.03
# Each case's sampling in a process in this many turns, the process's other cases taking theirs in
# between (bench/sweep/plan.chunked): at a busy hour it cut the spread between processes by a third
# in every case of results/noise_study_chunks (scripts/noise_study_chunks.sh).
DEFAULT_CHUNKS = 5


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
    m = spec(model)  # the model's own time goal, and what its default sweep leaves out
    return PresetDefaults(
        DEFAULT_ROUNDS, DEFAULT_MAX_ROUNDS, DEFAULT_BUDGET_S, m.budget_min, dict(m.left_out)
    )


# Largest accepted dimensions for a custom size: beyond these a CPU step takes minutes or more
# (the memory estimate refuses what does not fit anyway).
MAX_DIM = 16384
MAX_DEPTH = 256


@dataclass(frozen=True)
class Size:
    model: str  # a model's name (models/registry.MODELS)
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
        return {
            "model": self.model,
            "dims": dict(self.dims),
            "sweep": self.sweep,
            "label": self.label,
            "steps_per_call": self.steps_per_call(),
        }

    @classmethod
    def from_json(cls, d: dict) -> Size:
        return cls(d["model"], tuple(d["dims"].items()), d["sweep"])


def mlp(batch: int, width: int, depth: int, sweep: str) -> Size:
    """An MLP size (the tests' shorthand)."""
    return Size("mlp", (("batch", batch), ("width", width), ("depth", depth)), sweep)


def presets(model: str) -> dict[str, list[Size]]:
    """The model's presets (its SPEC), as sizes."""
    return {
        name: [Size(model, tuple(dims.items()), sweep) for dims, sweep in sizes]
        for name, sizes in spec(model).presets.items()
    }


PRESETS: dict[str, dict[str, list[Size]]] = {model: presets(model) for model in MODELS}


def parse_sizes(text: str, model: str = "mlp") -> list[Size]:
    """A preset name, or comma-separated custom sizes in the model's grammar (BxHxL for the MLP,
    BxTxCxLxNH for the GPT). ValueError naming the problem if bad."""
    if text in PRESETS[model]:
        return PRESETS[model][text]
    grammar = spec(model).grammar
    pattern = re.compile(grammar.pattern)
    sizes = []
    for part in text.split(","):
        part = part.strip()
        m = pattern.match(part)
        if not m:
            raise ValueError(
                f"unknown size {part!r} for {model}: use a preset "
                f"({', '.join(PRESETS[model])}) or {grammar.form} values such as "
                f"{grammar.example}"
            )
        vals = dict(zip(grammar.fields, (int(g) for g in m.groups()), strict=True))
        for name, v in vals.items():
            hi = MAX_DEPTH if name in grammar.depth_fields else MAX_DIM
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
