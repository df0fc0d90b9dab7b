"""Registry: the models (packages under models/ with a SPEC, models/spec.py) and their
implementations. Names are part of the interface (`--model`, `--impl`, the CSV `model` and `impl`
columns): a model is its package's name, an implementation `<framework>.<mode>`.

Nothing here imports a framework or bench/: whether an implementation can run here is the
framework record's question (bench/frameworks.py). Adding a model is its package; adding an
implementation is its file plus one line in its model's SPEC. Packages in the directories of
BENCH_MODEL_PATH (os.pathsep-separated) are models too, imported under their own names.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from models.spec import ModelSpec

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Impl:
    name: str  # registry name "<framework>.<mode>", e.g. "torch.eager"
    model: str  # the model's name
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

    def load(self):
        """The builder function (imports the framework: call it in a worker only)."""
        return load(self.target)


@dataclass(frozen=True)
class Model:
    """A found model: its name, its package and what it declares."""

    name: str
    package: str
    spec: ModelSpec

    @property
    def module(self) -> str:  # the shared truth: Config, init_params, make_batch, FLOPs, ...
        return f"{self.package}.model"

    @property
    def reference(self) -> str:  # (cfg, steps) -> (losses, params): the float64 truth
        return f"{self.package}.numpy_impl:reference"

    @property
    def pipeline(self) -> str:  # what the pipeline probe needs: CONFIG, TIED, stages, ...
        return f"{self.package}.pipeline"


def _found(package: str) -> Model | None:
    module = importlib.import_module(package)
    spec = getattr(module, "SPEC", None)
    return Model(package.rpartition(".")[2], package, spec) if isinstance(spec, ModelSpec) else None


def discover(extra: str | None = None) -> dict[str, Model]:
    """Every model package: those under models/, then those in BENCH_MODEL_PATH's directories."""
    found = [f"models.{m.name}" for m in pkgutil.iter_modules([str(HERE)]) if m.ispkg]
    path = extra if extra is not None else os.environ.get("BENCH_MODEL_PATH", "")
    for d in filter(None, path.split(os.pathsep)):
        if d not in sys.path:
            sys.path.insert(0, d)
        found += [m.name for m in pkgutil.iter_modules([d]) if m.ispkg]
    models = (_found(p) for p in found)
    return {m.name: m for m in models if m is not None}


MODELS: dict[str, Model] = discover()
CONTROL = ("null.noop", "models.null:build", {"role": "control"})


def _impls(m: Model) -> dict[str, Impl]:
    out = {}
    for name, target, *opts in m.spec.implementations:
        out[name] = Impl(name, m.name, f"{m.package}.{target}", **(opts[0] if opts else {}))
    # the control serves every model
    out[CONTROL[0]] = Impl(CONTROL[0], m.name, CONTROL[1], **CONTROL[2])
    return out


REGISTRY: dict[str, dict[str, Impl]] = {name: _impls(m) for name, m in MODELS.items()}


def impls(model: str) -> dict[str, Impl]:
    """A model's implementations by name ({} for an unknown model), BENCH_EXTRA_IMPLS's included."""
    _load_extra()
    return REGISTRY.get(model, {})


def get(model: str, name: str) -> Impl:
    """KeyError if the model has no implementation of that name."""
    _load_extra()
    return REGISTRY[model][name]


def spec(model: str) -> ModelSpec:
    return MODELS[model].spec


def model_module(model: str):
    """The module holding a model's shared truth (Model.module)."""
    return importlib.import_module(MODELS[model].module)


def pipeline_hooks(model: str):
    """The module holding what the pipeline probe needs of a model (Model.pipeline)."""
    return importlib.import_module(MODELS[model].pipeline)


def load(target: str):
    """The object a "module:name" string names."""
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def reference(model: str, cfg, steps: int):
    """The float64 reference run of a model: (losses (steps,), final params)."""
    return load(MODELS[model].reference)(cfg, steps)


def size_columns() -> tuple[str, ...]:
    """Every model's size columns, in the order the models declare them."""
    return tuple(dict.fromkeys(c for m in MODELS.values() for c in m.spec.size_columns))


def for_model(model: str) -> list[Impl]:
    return list(impls(model).values())


def check_model(model: str) -> None:
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; allowed: {', '.join(MODELS)}")


def select(model: str, text: str) -> list[Impl]:
    """--impl: comma-separated names, or all: every implementation of the model. ValueError
    naming the problem."""
    check_model(model)
    allowed = for_model(model)
    if text == "all":
        return allowed
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in impls(model)]
    if bad or not names:
        raise ValueError(
            f"unknown {model} implementation {', '.join(bad) or repr(text)}; allowed: "
            f"{', '.join(i.name for i in allowed)}, all"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"--impl names an implementation twice: {text}")
    return [impls(model)[n] for n in names]


_EXTRA: list[str] = []  # the modules of BENCH_EXTRA_IMPLS already registered


def _load_extra() -> None:
    """Add the `EXTRA_IMPLS` lists of the modules named in BENCH_EXTRA_IMPLS (comma-separated),
    on first use (such a module imports this one for Impl, so not while this one is imported).

    The tests use it to inject faulty implementations (tests/faulty.py) and another framework's
    (tests/fake_framework.py); the variable reaches every worker through its environment."""
    names = [m.strip() for m in os.environ.get("BENCH_EXTRA_IMPLS", "").split(",") if m.strip()]
    for module in (m for m in names if m not in _EXTRA):
        _EXTRA.append(module)
        for impl in importlib.import_module(module).EXTRA_IMPLS:
            REGISTRY[impl.model][impl.name] = impl
