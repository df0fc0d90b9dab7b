"""`bench list`: every implementation, and whether it can run on this machine."""

from __future__ import annotations

import sys

from bench.commands.common import EXIT_OK

HELP = "implementations and whether each is available here"


def add_arguments(p) -> None:
    pass


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from bench import frameworks
    from models.registry import MODELS, for_model

    impls = [i for model in MODELS for i in for_model(model)]
    gpu = None  # asked once, and only when an implementation runs on CUDA alone
    t = Table("implementation", "model", "framework", "mode", "devices", "available here")
    for i in impls:
        why = frameworks.impl_unavailable(i)
        if not why and i.cuda_only:
            if gpu is None:
                gpu = _gpu_missing(i.framework)
            why = gpu
        t.add_row(
            i.name,
            i.model,
            i.framework,
            i.mode,
            ", ".join(frameworks.devices(i)),
            "yes" if not why else f"no: {why}",
        )
    Console(width=None if sys.stdout.isatty() else 200).print(t)
    return EXIT_OK


def _gpu_missing(framework: str) -> str:
    """'' when the framework sees a CUDA GPU, else why its CUDA-only rows cannot run."""
    from bench.devices import probe_cuda

    seen = probe_cuda()
    if seen.get(framework):
        return ""
    return (
        f"needs a CUDA GPU; {framework} sees none ({seen.get(f'{framework}_error') or 'no device'})"
    )
