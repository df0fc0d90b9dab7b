"""A run's settings, and their form in run.json (from which `--resume` rebuilds them)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from bench import frameworks
from bench.frameworks import cpu_layout
from bench.options import DEFAULT_MODEL
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
                f"size {z.label} needs about {need / 2**30:.1f} GiB per worker (estimate: "
                "parameters, "
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
    native_kernels: bool = (
        False  # --native-kernels: the workers run without what holds a library below the CPU
    )
    harness_cpu: bool = (
        False  # the first CPU left to the runner and the system (bench/frameworks.cpu_layout)
    )
    live_workers: str = "all"  # "one": one worker process alive at a time, framework by framework
    max_rounds: int = (
        0  # extra rounds for wide CIs up to this many in all (bench/sweep/plan.py); 0: rounds
    )
    budget_min: float | None = None  # no extra round past this many minutes of estimated run time
    chunks: int = (
        1  # each case's sampling in a process, in this many turns (bench/sweep/plan.chunked)
    )
    # impl -> why the preset left it out (no --impl)
    left_out: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d["sizes"] = [z.to_json() for z in self.sizes]
        d["schema_version"] = SCHEMA_VERSION
        return d

    @classmethod
    def from_json(cls, d: dict) -> Settings:
        """KeyError or TypeError when the stored settings are incomplete."""
        return cls(
            model=d["model"],
            impls=list(d["impls"]),
            sizes=[Size.from_json(z) for z in d["sizes"]],
            threads=int(d["threads"]),
            rounds=int(d["rounds"]),
            budget=Budget(**d["budget"]),
            case_timeout_s=float(d["case_timeout_s"]),
            device=d.get("device", "cpu"),
            tf32=bool(d.get("tf32", False)),
            native_kernels=bool(d.get("native_kernels", False)),
            harness_cpu=bool(d.get("harness_cpu", False)),
            live_workers=d.get("live_workers", "all"),
            max_rounds=int(d.get("max_rounds", 0)),
            budget_min=d.get("budget_min"),
            left_out=dict(d.get("left_out") or {}),
            chunks=int(d.get("chunks", 1)),
        )

    @property
    def most_rounds(self) -> int:
        return max(self.rounds, self.max_rounds)


@dataclass(frozen=True)
class RunOptions:
    """`bench run`'s options as given: None where the machine or the preset decides."""

    model: str = DEFAULT_MODEL
    impl_text: str | None = None  # None: every implementation that can run, less the left-out
    sizes_text: str = "default"
    threads: int | None = None
    rounds: int | None = None
    budget_s: float | None = None
    min_samples: int = Budget.min_samples
    case_timeout_s: float = 600.0
    device: str = "cpu"
    tf32: bool = False
    native_kernels: bool = False
    harness_cpu: bool | None = None
    live_workers: str = "all"
    max_rounds: int | None = None
    budget_min: float | None = None
    chunks: int | None = None

    @classmethod
    def from_args(cls, args) -> RunOptions:
        """From the command's parsed arguments (bench/commands/run.py)."""
        return cls(
            args.model,
            args.impl,
            args.sizes,
            args.threads,
            args.rounds,
            args.budget,
            args.min_samples,
            args.case_timeout,
            args.device,
            args.tf32,
            args.native_kernels,
            args.harness_core,
            args.live_workers,
            args.max_rounds,
            args.budget_min,
            args.chunks,
        )


def new_settings(opts: RunOptions) -> Settings:
    """A new run's settings from the command's options (implementations, threads, harness core,
    rounds, extra rounds, time budget and sampling time: the defaults of the machine and the preset
    unless given); ValueError naming the first problem."""
    from bench import devices
    from bench.sizes import parse_sizes, preset_defaults
    from models.registry import select

    model, impl_text, sizes_text = opts.model, opts.impl_text, opts.sizes_text
    threads, rounds, max_rounds, harness_cpu = (
        opts.threads,
        opts.rounds,
        opts.max_rounds,
        opts.harness_cpu,
    )

    # names checked before the device probe
    select(model, "all" if impl_text is None else impl_text)
    sizes = parse_sizes(sizes_text, model)
    check_memory(sizes)
    dev = devices.resolve(opts.device)
    pre = preset_defaults(sizes_text, model)
    left_out = pre.left_out if impl_text is None else {}
    impls = [
        i
        for i in select(model, "all" if impl_text is None else impl_text)
        if i.name not in left_out
    ]
    if impl_text in (None, "all"):  # every one that can run on this device or on the CPU
        impls = [i for i in impls if dev in frameworks.devices(i) or "cpu" in frameworks.devices(i)]
    n = len(os.sched_getaffinity(0))
    harness_cpu = n >= 2 if harness_cpu is None else harness_cpu
    threads = threads or (n - 1 if harness_cpu else n)
    cpu_layout(threads, harness_cpu)  # ValueError when the CPUs are too few
    # an explicit --rounds: no extra
    most = max_rounds if max_rounds is not None else (pre.max_rounds if rounds is None else rounds)
    rounds = rounds or pre.rounds
    most = max(rounds, most)
    return Settings(
        model=model,
        impls=[i.name for i in impls],
        sizes=sizes,
        threads=threads,
        rounds=rounds,
        budget=Budget(
            seconds=opts.budget_s if opts.budget_s is not None else pre.budget_s,
            min_samples=opts.min_samples,
        ),
        case_timeout_s=opts.case_timeout_s,
        device=dev,
        tf32=opts.tf32,
        native_kernels=opts.native_kernels,
        harness_cpu=harness_cpu,
        live_workers=opts.live_workers,
        max_rounds=most,
        budget_min=opts.budget_min if opts.budget_min is not None else pre.budget_min,
        left_out=left_out,
        chunks=opts.chunks or pre.chunks,
    )
