"""The options several commands share, declared once (asv's common_args): --model, --sizes,
--device, --threads, --tf32. `bench run`, `bench profile`, `bench pipeline` and the pytest route
(bench/conftest.py) take each from here, with one default and one help text."""

from __future__ import annotations

import argparse
import math
import os

from models.registry import MODELS

DEFAULT_MODEL = "mlp"
DEFAULT_SIZES = "default"
DEVICES = ("cpu", "cuda", "auto")


def cpus() -> int:
    return len(os.sched_getaffinity(0))


def default_threads(harness_cpu: bool = True) -> int:
    """The CPUs less one, left to the harness (at least one); all of them without a harness CPU."""
    return max(cpus() - 1, 1) if harness_cpu else cpus()


def bounded(kind, lo, hi, what):
    """An argparse type: a number of `kind` within lo..hi, else a one-line error naming the option."""

    def conv(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if not (lo <= v <= hi) or (isinstance(v, float) and not math.isfinite(v)):
            raise argparse.ArgumentTypeError(f"{what} must be in {lo}..{hi}, got {text!r}")
        return v

    return conv


def shared() -> dict[str, tuple[tuple[str, ...], dict]]:
    """name -> (flags, keyword arguments) of each shared option."""
    n = cpus()
    return {
        "model": (
            ("--model",),
            {
                "default": DEFAULT_MODEL,
                "help": f"the model: {', '.join(MODELS)} (default {DEFAULT_MODEL})",
            },
        ),
        "sizes": (
            ("--sizes",),
            {
                "default": DEFAULT_SIZES,
                "help": "quick | default | gpu | custom sizes in the model's grammar: "
                "BxHxL,... (mlp), BxTxCxLxNH,... (gpt) (default default)",
            },
        ),
        "device": (
            ("--device",),
            {
                "default": "cpu",
                "choices": list(DEVICES),
                "help": "cpu (default), cuda, or auto (cuda when a GPU framework "
                "sees a GPU); NumPy and C stay on the CPU",
            },
        ),
        "threads": (
            ("--threads",),
            {
                "type": bounded(int, 1, n, "--threads"),
                "default": None,
                "help": f"threads for every framework (default: the CPUs less one, "
                f"{default_threads()} of {n}, one left to the harness)",
            },
        ),
        "tf32": (
            ("--tf32",),
            {
                "action": "store_true",
                "help": "allow TF32 matmuls on CUDA for torch and jax (default: strict fp32)",
            },
        ),
    }


def add(parser, *names: str, **changes: dict) -> None:
    """Add the shared options to an argparse parser or group (or a pytest option group:
    `addoption` takes the same arguments); `changes` adjusts one option's keywords by name."""
    add_option = getattr(parser, "add_argument", None) or parser.addoption
    options = shared()
    for name in names:
        flags, kwargs = options[name]
        add_option(*flags, **{**kwargs, **changes.get(name, {})})


def threads_or_default(threads: int | None, harness_cpu: bool = True) -> int:
    return threads or default_threads(harness_cpu)
