"""PyTorch helpers shared by every model's torch implementation (imports torch)."""

from __future__ import annotations

import torch


def count_dispatched(fn) -> int:
    """Run fn once eagerly and count the ATen operators it dispatches (TorchDispatchMode)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += 1
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return Count.n


def configure_compile() -> None:
    """Every size gets its own graph: raise Dynamo's recompile limit far above the size count."""
    import torch._dynamo.config as dynamo_config

    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit"):
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, max(getattr(dynamo_config, name), 256))


def synced(fn):
    """fn followed by torch.cuda.synchronize(): the step's GPU work ends inside the timed call."""

    def call() -> None:
        fn()
        torch.cuda.synchronize()

    return call
