"""A run's settings, and their form in run.json (from which `--resume` rebuilds them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from bench.schema import SCHEMA_VERSION
from bench.sizes import Size
from bench.timing import Budget
from models.registry import model_module

FRAMEWORK_BASE_BYTES = 1 << 30  # an imported framework, its allocator and compiled code


def check_memory(sizes: list[Size], available: int | None = None) -> None:
    """ValueError, before anything is allocated, for a size whose estimate exceeds available memory."""
    import psutil

    avail = psutil.virtual_memory().available if available is None else available
    for z in sizes:
        need = model_module(z.model).memory_bytes(z.config()) + FRAMEWORK_BASE_BYTES
        if need > 0.9 * avail:
            raise ValueError(
                f"size {z.label} needs about {need / 2**30:.1f} GiB per worker (estimate: parameters, "
                f"gradients, activations, float64 reference), {avail / 2**30:.1f} GiB available"
            )


@dataclass(frozen=True)
class Settings:
    model: str
    impls: list[str]
    sizes: list[Size]
    threads: int
    rounds: int
    budget: Budget
    case_timeout_s: float
    device: str = "cpu"  # cpu or cuda (resolved from --device auto before a run starts)
    tf32: bool = False  # TF32 matmuls on CUDA for torch and jax (--tf32); fp32 otherwise
    native_kernels: bool = False  # --native-kernels: the workers run without what holds a library below the CPU

    def to_json(self) -> dict:
        d = asdict(self)
        d["sizes"] = [z.to_json() for z in self.sizes]
        d["schema_version"] = SCHEMA_VERSION
        return d

    @classmethod
    def from_json(cls, d: dict) -> Settings:
        """KeyError or TypeError when the stored settings are incomplete."""
        return cls(
            model=d["model"], impls=list(d["impls"]), sizes=[Size.from_json(z) for z in d["sizes"]],
            threads=int(d["threads"]), rounds=int(d["rounds"]), budget=Budget(**d["budget"]),
            case_timeout_s=float(d["case_timeout_s"]), device=d.get("device", "cpu"), tf32=bool(d.get("tf32", False)),
            native_kernels=bool(d.get("native_kernels", False)),
        )


def new_settings(model: str, impl_text: str, sizes_text: str, threads: int, rounds: int | None,
                 budget_s: float | None, min_samples: int, case_timeout_s: float, device: str,
                 tf32: bool, native_kernels: bool = False) -> Settings:
    """A new run's settings from the command's options (rounds and sampling time: the preset's
    defaults unless given); ValueError naming the first problem."""
    from bench import devices
    from bench.sizes import parse_sizes, preset_defaults
    from models.registry import select

    select(model, impl_text)  # names checked before the device probe
    sizes = parse_sizes(sizes_text, model)
    check_memory(sizes)
    dev = devices.resolve(device)
    impls = select(model, impl_text, dev)
    default_rounds, default_budget = preset_defaults(sizes_text)
    return Settings(model=model, impls=[i.name for i in impls], sizes=sizes, threads=threads,
                    rounds=rounds or default_rounds,
                    budget=Budget(seconds=budget_s if budget_s is not None else default_budget, min_samples=min_samples),
                    case_timeout_s=case_timeout_s, device=dev, tf32=tf32, native_kernels=native_kernels)
