"""Registry: implementation name -> where its builder lives and what it needs.

Names are part of the interface (`--impl`, CSV `impl` column). Nothing here imports a framework:
`available()` only asks whether its packages are installed, so `bench list` stays cheap.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class Impl:
    name: str  # registry name, e.g. "torch.eager"
    model: str  # "mlp"
    framework: str  # worker process that runs it: numpy, torch, jax, null
    mode: str  # eager, compile, jit, scan, loop, noop
    target: str  # "module:function" returning a Step for a config
    requires: tuple[str, ...] = ()  # importable packages it needs
    fused: bool = False  # one call runs K steps (K recorded per row)
    probe: str = ""  # optional "module:function" -> '' or why it cannot run here (cheap, no build)
    devices: tuple[str, ...] = ("cpu",)  # where it can run; a CPU-only one stays on the CPU in a GPU run

    def load(self):
        """The builder function (imports the framework: call it in a worker only)."""
        module, func = self.target.split(":")
        return getattr(importlib.import_module(module), func)

    def unavailable_reason(self) -> str:
        """'' when every required package is installed, else why not."""
        missing = [r for r in self.requires if importlib.util.find_spec(r) is None]
        if missing:
            return f"{', '.join(missing)} not installed (pip install -c constraints.txt -e '.[all]')"
        if self.probe:
            module, func = self.probe.split(":")
            return getattr(importlib.import_module(module), func)()
        return ""


BOTH, CUDA = ("cpu", "cuda"), ("cuda",)


def _impls(*impls: Impl) -> dict[str, Impl]:
    return {i.name: i for i in impls}


REGISTRY: dict[str, dict[str, Impl]] = {
    "mlp": _impls(
        Impl("numpy.loop", "mlp", "numpy", "loop", "models.mlp_numpy:build", ("numpy",)),
        Impl("torch.eager", "mlp", "torch", "eager", "models.mlp_torch:build_eager", ("torch",), devices=BOTH),
        Impl("torch.compile", "mlp", "torch", "compile", "models.mlp_torch:build_compiled", ("torch",), devices=BOTH),
        Impl("torch.cudagraphs", "mlp", "torch", "cudagraphs", "models.mlp_torch:build_cudagraphs", ("torch",),
             devices=CUDA),
        Impl("jax.eager", "mlp", "jax", "eager", "models.mlp_jax:build_eager", ("jax",), devices=BOTH),
        Impl("jax.jit", "mlp", "jax", "jit", "models.mlp_jax:build_jit", ("jax",), devices=BOTH),
        Impl("jax.scan", "mlp", "jax", "scan", "models.mlp_jax:build_scan", ("jax",), fused=True, devices=BOTH),
        Impl("c.ref", "mlp", "c", "ref", "models.mlp_c:build_ref", ("scipy_openblas32",), fused=True,
             probe="models.mlp_c:unavailable_reason"),
        Impl("c.step", "mlp", "c", "step", "models.mlp_c:build_step", ("scipy_openblas32",),
             probe="models.mlp_c:unavailable_reason"),
        Impl("null.noop", "mlp", "null", "noop", "models.null:build"),
    ),
    "gpt": _impls(
        Impl("numpy.loop", "gpt", "numpy", "loop", "models.gpt_numpy:build", ("numpy",)),
        Impl("torch.eager", "gpt", "torch", "eager", "models.gpt_torch:build_eager", ("torch",), devices=BOTH),
        Impl("torch.compile", "gpt", "torch", "compile", "models.gpt_torch:build_compiled", ("torch",), devices=BOTH),
        Impl("torch.cudagraphs", "gpt", "torch", "cudagraphs", "models.gpt_torch:build_cudagraphs", ("torch",),
             devices=CUDA),
        Impl("jax.eager", "gpt", "jax", "eager", "models.gpt_jax:build_eager", ("jax",), devices=BOTH),
        Impl("jax.jit", "gpt", "jax", "jit", "models.gpt_jax:build_jit", ("jax",), devices=BOTH),
        Impl("jax.scan", "gpt", "jax", "scan", "models.gpt_jax:build_scan", ("jax",), fused=True, devices=BOTH),
        Impl("null.noop", "gpt", "null", "noop", "models.null:build"),
    ),
}
IMPLS = REGISTRY["mlp"]  # the MLP's implementations, by name


def get(model: str, name: str) -> Impl:
    """KeyError if the model has no implementation of that name."""
    return REGISTRY[model][name]


MODELS = {"mlp": "models.mlp", "gpt": "models.gpt"}  # model name -> module with the shared truth


def model_module(model: str):
    """The module holding a model's Config, init_params, make_batch, flops_per_step, n_params,
    memory_bytes, reference, compare and describe."""
    return importlib.import_module(MODELS[model])


def for_model(model: str) -> list[Impl]:
    return list(REGISTRY[model].values())


def register_extra(env: str | None = None) -> None:
    """Add the `EXTRA_IMPLS` lists of the modules named in BENCH_EXTRA_IMPLS (comma-separated).

    The tests use this to inject faulty implementations (tests/faulty.py); the variable reaches
    every worker through its environment. Normal runs never set it.
    """
    import os

    for module in filter(None, (env if env is not None else os.environ.get("BENCH_EXTRA_IMPLS", "")).split(",")):
        for impl in importlib.import_module(module.strip()).EXTRA_IMPLS:
            REGISTRY[impl.model][impl.name] = impl


register_extra()
