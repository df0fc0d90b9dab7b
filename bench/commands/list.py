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

    from models.registry import REGISTRY

    impls = [i for impls in REGISTRY.values() for i in impls.values()]
    gpu = None  # asked once, and only when an implementation runs on CUDA alone
    t = Table("implementation", "model", "framework", "mode", "devices", "available here")
    for i in impls:
        why = i.unavailable_reason()
        if not why and i.cuda_only:
            if gpu is None:
                from bench.devices import probe_cuda

                seen = probe_cuda()
                gpu = "" if seen.get("torch") else f"needs a CUDA GPU; torch sees none ({seen.get('torch_error') or 'no device'})"
            why = gpu
        t.add_row(i.name, i.model, i.framework, i.mode, ", ".join(i.devices), "yes" if not why else f"no: {why}")
    Console(width=None if sys.stdout.isatty() else 200).print(t)
    return EXIT_OK
