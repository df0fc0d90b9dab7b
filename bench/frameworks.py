"""Each framework described once, as one record: the packages it needs, whether it runs on a GPU,
how a worker sets it up, its matmul for the peak and copy for the memory bandwidth, the kernels
its libraries run, its profiler, its plot colours, whether it is the floor, and its forms in the
pipeline probe. Nothing else in bench/ branches on a framework's name: the runner, workers,
pytest route, peak, devices, reports, pipeline probe and claim ask here.

Importing this module imports no framework, NumPy included (a worker pins its CPUs first);
`setup()` and the calls the records name (bench/framework_calls.py) do, inside a worker.
A framework of one's own is one more record: a module listing it in FRAMEWORKS, named in
BENCH_EXTRA_FRAMEWORKS (comma-separated), which every worker's environment carries.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import framework_calls as calls
from bench.schedules import SCHEDULES

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def thread_env(threads: int, device: str) -> dict[str, str]:
    """Environment variables that every worker (and the pytest process) gets, before any import."""
    env = {var: str(threads) for var in THREAD_VARS}
    if device == "cpu":
        env["JAX_PLATFORMS"] = "cpu"  # a CPU run keeps JAX off any GPU the machine has
    return env


def cache_root() -> Path:
    """Where the compiled frameworks keep their persistent caches between worker processes."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "framework-overhead-bench"


def compile_cache_env() -> dict[str, str]:
    """Persistent compile caches, so that each round's fresh worker does not pay the full compile
    again: torchinductor's FX graph cache (on by default, here in our cache directory) and JAX's
    compilation cache (off by default; on, for every compiled program). A user's own setting wins."""
    root = cache_root()
    want = {
        "TORCHINDUCTOR_CACHE_DIR": str(root / "inductor"),
        "JAX_COMPILATION_CACHE_DIR": str(root / "jax"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
    }
    return {k: os.environ.get(k, v) for k, v in want.items()}


def pin_cpus(threads: int, first: int = 0, cpus: list[int] | None = None) -> list[int]:
    """Restrict this process to `cpus`, or to `threads` of its allowed CPUs from the `first` one on
    (wrapping around), before a framework is imported."""
    if cpus is None:
        allowed = sorted(os.sched_getaffinity(0))
        cpus = sorted({allowed[(first + i) % len(allowed)] for i in range(threads)})
    os.sched_setaffinity(0, cpus)
    return cpus


def cpu_layout(threads: int, harness_cpu: bool) -> tuple[list[int], list[int]]:
    """(the harness's CPUs, the measuring workers' CPUs) of a run. With harness_cpu the first allowed
    CPU is left to the runner, its reader threads and the system, and the workers' `threads` compute
    threads get the next ones; without, the harness keeps every CPU and the workers get the first
    `threads`. ValueError when the CPUs are too few."""
    allowed = sorted(os.sched_getaffinity(0))
    if not harness_cpu:
        return allowed, allowed[:threads]
    if threads + 1 > len(allowed):
        raise ValueError(
            f"--threads {threads} with a harness core needs {threads + 1} CPUs, this process has "
            f"{len(allowed)}: use --threads {len(allowed) - 1} or --no-harness-core"
        )
    return allowed[:1], allowed[1 : 1 + threads]


@contextlib.contextmanager
def pinned(cpus: list[int] | None):
    """This process on `cpus` for the block (None: unchanged), its affinity restored after."""
    saved = os.sched_getaffinity(0)
    if cpus:
        os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


def pin_process(
    threads: int, device: str = "cpu", first: int = 0, cpus: list[int] | None = None
) -> list[int]:
    """What every measuring process does before importing a framework (the workers, the pytest
    route, the profiler, each pipeline rank): its CPUs, the thread variables, the compile caches."""
    cpus = pin_cpus(threads, first, cpus)
    os.environ.update({**thread_env(threads, device), **compile_cache_env()})
    return cpus


@dataclass(frozen=True)
class PipelineForm:
    """One value of `bench pipeline --framework`: the processes its stages run in."""

    name: str  # pipeline.csv's framework column: torch, jax, jax-dist, c
    label: str  # in reports: PyTorch, JAX, ...
    schedules: tuple[str, ...]  # what it runs (bench/schedules.py names)
    costed: tuple[str, ...]  # the schedules of the report's schedule-cost table
    rank_module: str  # the rank program (python -m MODULE SPEC_JSON)
    single: str  # the form of its one-process baseline (P threads)
    launch: str  # "store": a process per stage, joined by a store (c10d); "coordinator": a process
    #              per stage, joined at a coordinator's port (jax.distributed); "one": one process
    #              drives every stage (shard_map; mpiexec)
    stage_threads: bool = False  # "one" launch: the process gets P threads (one per stage)
    available: str = ""  # "module:function" -> '' or why its pipeline cannot run here
    nodes: bool = False  # runs across machines (--nnodes)
    gpu: bool = False  # runs on CUDA, one GPU per stage


@dataclass(frozen=True)
class Framework:
    name: str
    packages: tuple[str, ...]  # what its implementations need installed
    # (threads, device, tf32) -> what it uses
    setup: Callable[[int, str, bool], dict] = calls.setup_none
    matmul: Callable | None = None  # (a, b, device) -> a synced call computing a @ b (the peak)
    copy: Callable | None = None  # (nbytes, device) -> a synced copy within the device's memory
    copy_devices: tuple[str, ...] = ()  # the devices whose memory bandwidth its copy measures
    gpu: bool = False  # its implementations run on the run's device; the others stay on the CPU
    floor: bool = False  # the bare floor the pipeline report compares every framework with
    probe: str = ""  # "module:function" -> '' or why its rows cannot run, beyond the packages
    kernels: Callable[[], dict] | None = None  # what its libraries run, beyond the BLAS pools
    blas: str = ""  # the BLAS its matmuls go through, when a CPU-level variable can hold it
    blas_threads: bool = False  # threads_used is its BLAS pool's count
    sees_cuda: Callable[[], bool] | None = None  # whether it sees a CUDA GPU (bench/devices.py)
    styles: dict[str, tuple[str, str]] = field(default_factory=dict)  # mode -> (colour, marker)
    profiler: str = "python_profile"  # its own profiler, a function of bench/sweep/profilers.py
    schedule_cost: str = ""  # the probe schedule whose residual is its schedule's cost (claim)
    pipeline: tuple[PipelineForm, ...] = ()


FRAMEWORKS: dict[str, Framework] = {
    f.name: f
    for f in (
        Framework(
            "numpy",
            ("numpy",),
            matmul=calls.matmul_numpy,
            copy=calls.copy_numpy,
            copy_devices=("cpu",),
            kernels=calls.kernels_numpy,
            blas="openblas",
            blas_threads=True,
            styles={"loop": ("#4c72b0", "o")},
        ),
        Framework(
            "torch",
            ("torch",),
            calls.setup_torch,
            calls.matmul_torch,
            calls.copy_torch,
            ("cuda",),
            gpu=True,
            kernels=calls.kernels_torch,
            sees_cuda=calls.sees_cuda_torch,
            styles={
                "eager": ("#dd8452", "s"),
                "compile": ("#c44e52", "D"),
                "fullgraph": ("#e377c2", "h"),
                "cudagraphs": ("#bcbd22", "d"),
                "scan": ("#8c564b", "p"),
            },
            profiler="torch_profile",
            schedule_cost="1f1b",
            pipeline=(
                PipelineForm(
                    "torch",
                    "PyTorch",
                    tuple(SCHEDULES),
                    ("gpipe", "1f1b", "hand-gpipe", "hand-1f1b"),
                    "bench.pipeline.rank",
                    "torch",
                    "store",
                    nodes=True,
                    gpu=True,
                ),
            ),
        ),
        Framework(
            "jax",
            ("jax",),
            calls.setup_jax,
            calls.matmul_jax,
            calls.copy_jax,
            ("cuda",),
            gpu=True,
            kernels=calls.kernels_jax,
            sees_cuda=calls.sees_cuda_jax,
            styles={"eager": ("#55a868", "^"), "jit": ("#8172b3", "v"), "scan": ("#937860", "P")},
            profiler="jax_profile",
            pipeline=(
                PipelineForm(
                    "jax",
                    "JAX",
                    ("gpipe", "one-process"),
                    ("gpipe",),
                    "bench.pipeline.jax_rank",
                    "jax-single",
                    "one",
                    stage_threads=True,
                ),  # shard_map over P host devices
                PipelineForm(
                    "jax-dist",
                    "JAX dist",
                    ("gpipe",),
                    ("gpipe",),
                    "bench.pipeline.jax_rank",
                    "jax-single",
                    "coordinator",
                    nodes=True,
                ),
            ),
        ),
        Framework(
            "c",
            ("scipy_openblas32",),
            calls.setup_c,
            calls.matmul_c,
            floor=True,
            probe="models.cbuild:unavailable_reason",
            blas="openblas",
            styles={"ref": ("#222222", "*"), "step": ("#777777", "X")},
            pipeline=(
                PipelineForm(
                    "c",
                    "C",
                    ("gpipe", "1f1b", "one-process"),
                    ("gpipe", "1f1b"),
                    "bench.pipeline.c_rank",
                    "c-single",
                    "one",
                    available="bench.pipeline.cprog:unavailable_reason",
                    nodes=True,
                ),
            ),
        ),
        Framework("null", ()),
    )
}


_EXTRA: list[str] = []  # the modules of BENCH_EXTRA_FRAMEWORKS already registered


def known() -> dict[str, Framework]:
    """Every framework: the records above, and those of the modules named in
    BENCH_EXTRA_FRAMEWORKS (comma-separated), added on first use (such a module imports this
    one for the Framework record, so not while this one is being imported)."""
    names = [
        m.strip() for m in os.environ.get("BENCH_EXTRA_FRAMEWORKS", "").split(",") if m.strip()
    ]
    for module in (m for m in names if m not in _EXTRA):
        _EXTRA.append(module)
        for fw in importlib.import_module(module).FRAMEWORKS:
            FRAMEWORKS[fw.name] = fw
    return FRAMEWORKS


def get(name: str) -> Framework:
    """ImportError for a framework this harness does not know (its rows become unavailable)."""
    if name not in known():
        raise ImportError(f"unknown framework {name!r}")
    return known()[name]


def _call(target: str):
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)()


def unavailable(name: str) -> str:
    """'' when a framework's implementations can run here, else why not (packages, its probe)."""
    if name not in known():
        return f"unknown framework {name!r}"
    fw = known()[name]
    missing = [p for p in fw.packages if importlib.util.find_spec(p) is None]
    if missing:
        return f"{', '.join(missing)} not installed (pip install -c constraints.txt -e '.[all]')"
    return _call(fw.probe) if fw.probe else ""


def devices(impl) -> tuple[str, ...]:
    """Where an implementation (models/registry.Impl) can run."""
    if impl.cuda_only:
        return ("cuda",)
    return ("cpu", "cuda") if get(impl.framework).gpu else ("cpu",)


def device_of(framework: str, device: str) -> str:
    """Where a framework's implementations run in a run on `device`: a GPU framework's follow it;
    the others (and an unknown one) stay on the CPU."""
    return device if framework in known() and known()[framework].gpu else "cpu"


def run_device(impl, device: str) -> str:
    """Where an implementation (models/registry.Impl) runs in a run on `device`."""
    return device_of(impl.framework, device)


def impl_unavailable(impl, device: str | None = None) -> str:
    """'' when an implementation can run here (and, given a run's device, there), else why."""
    why = unavailable(impl.framework)
    if why or device is None:
        return why
    if run_device(impl, device) not in devices(impl):
        return f"runs on {', '.join(devices(impl))} only; this run is on {device} (--device)"
    return ""


def style(impl: str) -> tuple[str, str]:
    """(colour, marker) of an implementation name in every plot; grey dots for unknown ones."""
    fw, _, mode = impl.partition(".")
    return known()[fw].styles.get(mode, ("#999999", ".")) if fw in known() else ("#999999", ".")


def setup(name: str, threads: int, device: str = "cpu", tf32: bool = False) -> tuple[dict, object]:
    """Import the framework, apply the thread count (and TF32 on CUDA); (what it uses, a handle
    to keep alive: NumPy's BLAS and any OpenMP runtime stay limited while it lives)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    fw = get(name)
    info: dict = {
        "framework": name,
        "pid": os.getpid(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "device": device,
    }
    info.update(fw.setup(threads, device, tf32))
    limits = threadpool_limits(limits=threads)
    info["threadpools"] = [
        {
            k: p.get(k)
            for k in (
                "user_api",
                "internal_api",
                "num_threads",
                "version",
                "prefix",
                "architecture",
            )
        }
        for p in threadpool_info()
    ]
    info["kernels"] = worker_kernels(name)
    if "threads_used" not in info:  # numpy: its BLAS pool; null: nothing but the affinity
        blas = [p["num_threads"] for p in info["threadpools"] if p["user_api"] == "blas"]
        info["threads_used"] = blas[0] if blas and fw.blas_threads else len(info["affinity"])
    return info, limits


def worker_kernels(name: str) -> dict:
    """In a worker, after its framework's setup: what its libraries run (bench/kernels.py)."""
    from threadpoolctl import threadpool_info

    fw = get(name)
    extra = fw.kernels() if fw.kernels else {}
    keys = (
        "user_api",
        "internal_api",
        "version",
        "architecture",
        "num_threads",
        "prefix",
        "filepath",
    )
    return {"blas": [{k: p.get(k) for k in keys} for p in threadpool_info()], **extra}


def blas_users(blas: str) -> tuple[str, ...]:
    """The frameworks whose matmuls go through this BLAS."""
    return tuple(f.name for f in known().values() if f.blas == blas)


def copy_call(name: str, nbytes: int, device: str = "cpu") -> Callable[[], object]:
    """A copy of nbytes within the device's memory, synced on return."""
    return get(name).copy(nbytes, device)


def measures_bandwidth(name: str, device: str) -> bool:
    """Whether this framework's copy measures the memory bandwidth of this device."""
    return device in get(name).copy_devices


def gpu_frameworks() -> list[Framework]:
    return [f for f in known().values() if f.gpu]


def sees_cuda() -> dict:
    """{name: bool, name_error: why} for every GPU framework (run in a probe subprocess)."""
    out = {}
    for fw in gpu_frameworks():
        try:
            out[fw.name], out[f"{fw.name}_error"] = bool(fw.sees_cuda()), ""
        except Exception as e:  # a broken install: no GPU for it, and why
            out[fw.name], out[f"{fw.name}_error"] = (
                False,
                f"{type(e).__name__}: {e}".splitlines()[0],
            )
    return out


def pipeline_forms() -> dict[str, PipelineForm]:
    """Every `bench pipeline --framework` value, in the records' order."""
    return {form.name: form for fw in known().values() for form in fw.pipeline}


def pipeline_framework(form: str) -> Framework:
    """The record a pipeline form belongs to."""
    return next(fw for fw in known().values() if any(f.name == form for f in fw.pipeline))


def rank_modules() -> dict[str, str]:
    """Every pipeline process form (a --framework value or its one-process baseline) -> its rank
    program."""
    out = {}
    for pf in pipeline_forms().values():
        out[pf.name] = out[pf.single] = pf.rank_module
    return out


def pipeline_unavailable(form: str) -> str:
    """'' when a pipeline form can run here, else why not."""
    pf = pipeline_forms()[form]
    if pf.available:
        return _call(pf.available)
    fw = pipeline_framework(form)
    missing = [p for p in fw.packages if importlib.util.find_spec(p) is None]
    return f"{missing[0]} is not installed (pip install -e '.[{missing[0]}]')" if missing else ""
