"""PyTorch helpers shared by every model's torch implementation (imports torch)."""

from __future__ import annotations

from functools import partial

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


def compiled(fn, kind: str, device: str):
    """fn under torch.compile for a compiled kind: "compile" (the common idiom, graph breaks
    allowed), "fullgraph" and "scan" (one graph or an error), "cudagraphs" (fullgraph, replayed
    as a CUDA graph: mode="reduce-overhead", CUDA only). One static-shape graph per size."""
    if kind == "cudagraphs" and not device.startswith("cuda"):
        raise RuntimeError("torch.cudagraphs needs --device cuda")
    configure_compile()
    mode = "reduce-overhead" if kind == "cudagraphs" else None
    return torch.compile(fn, dynamic=False, fullgraph=kind != "compile", mode=mode)


def graph_facts(kind: str, fn, *args) -> dict:
    """How many graphs and graph breaks Dynamo makes of one step (torch._dynamo.explain runs fn
    once). A full-graph kind that is not one graph is an error, not a slower row."""
    if kind == "eager":
        return {}
    ex = torch._dynamo.explain(fn)(*args)
    reasons = sorted({str(r.reason).splitlines()[0][:160] for r in ex.break_reasons})
    if kind != "compile" and (ex.graph_count != 1 or ex.graph_break_count):
        raise RuntimeError(
            f"torch.{kind}: the step is {ex.graph_count} graphs with {ex.graph_break_count} "
            f"breaks, not one graph: {'; '.join(reasons)}"
        )
    return {
        "graphs": ex.graph_count,
        "graph_breaks": ex.graph_break_count,
        "break_reasons": reasons,
    }


def set_call(step, fn, device: str) -> None:
    """step.call: fn, synced on CUDA so the step's GPU work ends inside the timed call; on the
    CPU (synchronous) exactly fn, with nothing added to its timed region."""
    step.call = synced(fn) if device.startswith("cuda") else fn


def scan_fn(body):
    """(carry, xs) -> (carry, losses): `body` once per row of xs, as one graph (torch.scan, the
    counterpart of jax.lax.scan; a prototype op in torch 2.13)."""
    from torch._higher_order_ops import scan

    def run(carry, xs):
        return scan(body, carry, xs)

    return run


class ScanDriver:
    """K training steps per call through a compiled torch.scan; the carry (parameters and any
    optimizer state) lives here between calls. losses(n) runs a scan n steps long."""

    def __init__(self, body, carry, steps_per_call: int, device: str) -> None:
        self.fn = scan_fn(body)
        self.run = compiled(self.fn, "scan", device)
        self.carry, self.device = carry, device
        self.xs = torch.zeros(steps_per_call, 1, device=device)  # only its length matters

    def call(self) -> None:
        self.carry, _ = self.run(self.carry, self.xs)

    def losses(self, n: int):
        self.carry, losses = self.run(self.carry, torch.zeros(n, 1, device=self.device))
        return losses.detach().cpu().numpy().astype("float64")

    def describe(self) -> dict:
        return graph_facts("scan", self.fn, self.carry, self.xs)


def bind(step, device: str) -> None:
    """step.step_fn: step.fn with step.args, as its kind runs it (eager as written, every other
    kind through compiled()); step.call set from it (set_call)."""
    fn = step.fn if step.kind == "eager" else compiled(step.fn, step.kind, device)
    step.step_fn = partial(fn, *step.args) if step.args else fn
    set_call(step, step.step_fn, device)


def builders(step_cls, scan_cls) -> tuple:
    """A model's registered torch builders from its two step classes: build_eager, build_compiled,
    build_fullgraph, build_cudagraphs (step_cls(cfg, kind, device)) and build_scan
    (scan_cls(cfg, steps_per_call, device))."""

    def of_kind(kind: str):
        def build(cfg, steps_per_call: int = 1, device: str = "cpu"):
            return step_cls(cfg, kind, device)

        build.__name__ = f"build_{kind}"
        return build

    def build_scan(cfg, steps_per_call: int = 1, device: str = "cpu"):
        return scan_cls(cfg, steps_per_call, device)

    return (
        of_kind("eager"),
        of_kind("compile"),
        of_kind("fullgraph"),
        of_kind("cudagraphs"),
        build_scan,
    )
