"""Registry: implementation name -> where its builder lives and what it needs.

Names are part of the interface (`--impl`, CSV `impl` column): `<framework>.<mode>`. Nothing here
imports a framework: `unavailable_reason()` only asks whether its packages are installed, so
`bench list` stays cheap. Adding an implementation is its file plus one line in REGISTRY.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass, field

# What each framework's implementations need installed, and a cheap probe ('' or why not).
NEEDS: dict[str, tuple[tuple[str, ...], str]] = {
    "numpy": (("numpy",), ""),
    "torch": (("torch",), ""),
    "jax": (("jax",), ""),
    "c": (("scipy_openblas32",), "models.cbuild:unavailable_reason"),
    "null": ((), ""),
}
GPU_FRAMEWORKS = ("torch", "jax")  # their implementations run on the run's device; the others on the CPU


def device_for(framework: str, run_device: str) -> str:
    """Where a framework's implementations run in a run on run_device: torch and jax follow it;
    NumPy, C and the control stay on the CPU."""
    return run_device if framework in GPU_FRAMEWORKS else "cpu"


@dataclass(frozen=True)
class Impl:
    name: str  # registry name "<framework>.<mode>", e.g. "torch.eager"
    model: str  # "mlp" or "gpt"
    target: str  # "module:function": build(cfg, k=1, device="cpu") -> Step (models/step.py)
    fused: bool = False  # one call runs K steps (K recorded per row)
    role: str = ""  # "floor": the bare reference (t_floor of the analysis); "control": the harness's own cost
    cuda_only: bool = False  # runs only with --device cuda
    framework: str = ""  # worker process that runs it; default: the name's first part
    mode: str = field(init=False, default="")

    def __post_init__(self) -> None:
        fw, _, mode = self.name.partition(".")
        object.__setattr__(self, "framework", self.framework or fw)
        object.__setattr__(self, "mode", mode)

    @property
    def devices(self) -> tuple[str, ...]:
        """Where it can run; a CPU-only one stays on the CPU in a GPU run."""
        if self.cuda_only:
            return ("cuda",)
        return ("cpu", "cuda") if self.framework in GPU_FRAMEWORKS else ("cpu",)

    def run_device(self, run_device: str) -> str:
        """Where this implementation runs in a run on run_device (device_for)."""
        return device_for(self.framework, run_device)

    def load(self):
        """The builder function (imports the framework: call it in a worker only)."""
        return load(self.target)

    def unavailable_reason(self, run_device: str | None = None) -> str:
        """'' when every required package is installed (and, given a run's device, when it can
        run there), else why not."""
        requires, probe = NEEDS.get(self.framework, ((), ""))
        missing = [r for r in requires if importlib.util.find_spec(r) is None]
        if missing:
            return f"{', '.join(missing)} not installed (pip install -c constraints.txt -e '.[all]')"
        if probe:
            module, func = probe.split(":")
            why = getattr(importlib.import_module(module), func)()
            if why:
                return why
        if run_device is not None and self.run_device(run_device) not in self.devices:
            return f"runs on {', '.join(self.devices)} only; this run is on {run_device} (--device)"
        return ""


def _impls(model: str, *lines: tuple) -> dict[str, Impl]:
    out = {}
    for name, target, *opts in lines:
        impl = Impl(name, model, f"models.{model}.{target}", **(opts[0] if opts else {}))
        out[impl.name] = impl
    return out


FUSED, FLOOR, CUDA = {"fused": True}, {"fused": True, "role": "floor"}, {"cuda_only": True}
CONTROL = ("null.noop", "models.null:build", {"role": "control"})

# Every model has the same implementations (one file per framework in models/<model>/).
IMPLEMENTATIONS = (
    ("numpy.loop", "numpy_impl:build"),
    ("torch.eager", "torch_impl:build_eager"),
    ("torch.compile", "torch_impl:build_compiled"),
    ("torch.fullgraph", "torch_impl:build_fullgraph"),
    ("torch.cudagraphs", "torch_impl:build_cudagraphs", CUDA),
    ("torch.scan", "torch_impl:build_scan", FUSED),
    ("jax.eager", "jax_impl:build_eager"),
    ("jax.jit", "jax_impl:build_jit"),
    ("jax.scan", "jax_impl:build_scan", FUSED),
    ("c.ref", "c_impl:build_ref", FLOOR),
    ("c.step", "c_impl:build_step"),
)
REGISTRY: dict[str, dict[str, Impl]] = {model: _impls(model, *IMPLEMENTATIONS) for model in ("mlp", "gpt")}
for _model in REGISTRY:  # the control serves every model
    REGISTRY[_model][CONTROL[0]] = Impl(CONTROL[0], _model, CONTROL[1], **CONTROL[2])


@dataclass(frozen=True)
class ModelSpec:
    module: str  # the shared truth: Config, init_params, make_batch, flops_per_step, n_params,
    #              memory_bytes, compare, describe, LOSS_RTOL, UPDATE_RTOL
    reference: str  # "module:function" (cfg, steps) -> (losses, params): the float64 truth
    pipeline: str  # what the pipeline probe needs: CONFIG, TIED, n_units, boundary_shape, reference_grads, stages


MODELS: dict[str, ModelSpec] = {
    name: ModelSpec(f"models.{name}.model", f"models.{name}.numpy_impl:reference", f"models.{name}.pipeline")
    for name in ("mlp", "gpt")
}


def get(model: str, name: str) -> Impl:
    """KeyError if the model has no implementation of that name."""
    return REGISTRY[model][name]


def model_module(model: str):
    """The module holding a model's shared truth (ModelSpec.module)."""
    return importlib.import_module(MODELS[model].module)


def pipeline_hooks(model: str):
    """The module holding what the pipeline probe needs of a model (ModelSpec.pipeline)."""
    return importlib.import_module(MODELS[model].pipeline)


def load(target: str):
    """The object a "module:name" string names."""
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def reference(model: str, cfg, steps: int):
    """The float64 reference run of a model: (losses (steps,), final params)."""
    module, func = MODELS[model].reference.split(":")
    return getattr(importlib.import_module(module), func)(cfg, steps)


def for_model(model: str) -> list[Impl]:
    return list(REGISTRY[model].values())


def select(model: str, text: str, device: str | None = None) -> list[Impl]:
    """--impl: comma-separated names, or all: every implementation of the model (with a device,
    every one that can run there or on the CPU). ValueError naming the problem."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; allowed: {', '.join(MODELS)}")
    allowed = for_model(model)
    if text == "all":
        return [i for i in allowed if device is None or device in i.devices or "cpu" in i.devices]
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in REGISTRY[model]]
    if bad or not names:
        raise ValueError(f"unknown {model} implementation {', '.join(bad) or repr(text)}; allowed: "
                         f"{', '.join(i.name for i in allowed)}, all")
    if len(set(names)) != len(names):
        raise ValueError(f"--impl names an implementation twice: {text}")
    return [REGISTRY[model][n] for n in names]


def register_extra(env: str | None = None) -> None:
    """Add the `EXTRA_IMPLS` lists of the modules named in BENCH_EXTRA_IMPLS (comma-separated).

    The tests use this to inject faulty implementations (tests/faulty.py); the variable reaches
    every worker through its environment. Normal runs never set it.
    """
    for module in filter(None, (env if env is not None else os.environ.get("BENCH_EXTRA_IMPLS", "")).split(",")):
        for impl in importlib.import_module(module.strip()).EXTRA_IMPLS:
            REGISTRY[impl.model][impl.name] = impl


register_extra()
