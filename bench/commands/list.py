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

    t = Table("implementation", "model", "framework", "mode", "devices", "available here")
    for i in (i for impls in REGISTRY.values() for i in impls.values()):
        why = i.unavailable_reason()
        t.add_row(i.name, i.model, i.framework, i.mode, ", ".join(i.devices), "yes" if not why else f"no: {why}")
    Console(width=None if sys.stdout.isatty() else 200).print(t)
    return EXIT_OK
