"""Each framework described once: where it runs, how its threads (and TF32) are set, its matmul
for the peak, and its plot colours. The runner, worker, pytest route, peak and report ask here
instead of naming frameworks.

Importing this module imports no framework, NumPy included (a worker pins its CPUs first);
`setup()` and the matmul calls do, inside a worker.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import kernels

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Framework:
    name: str
    setup: Callable[[int, str, bool], dict]  # (threads, device, tf32) -> what it actually uses
    matmul: Callable | None  # (a, b, device) -> a call computing a @ b, synced (a, b: float32 NumPy)
    styles: dict[str, tuple[str, str]] = field(default_factory=dict)  # mode -> (colour, marker) in plots
    profiler: str = "python_profile"  # its own profiler, a function of bench/profilers.py


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
    want = {"TORCHINDUCTOR_CACHE_DIR": str(root / "inductor"), "JAX_COMPILATION_CACHE_DIR": str(root / "jax"),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}
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
        raise ValueError(f"--threads {threads} with a harness core needs {threads + 1} CPUs, this process has "
                         f"{len(allowed)}: use --threads {len(allowed) - 1} or --no-harness-core")
    return allowed[:1], allowed[1:1 + threads]


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


def pin_process(threads: int, device: str = "cpu", first: int = 0, cpus: list[int] | None = None) -> list[int]:
    """What every measuring process does before importing a framework (the workers, the pytest
    route, the profiler, each pipeline rank): its CPUs, the thread variables, the compile caches."""
    cpus = pin_cpus(threads, first, cpus)
    os.environ.update({**thread_env(threads, device), **compile_cache_env()})
    return cpus


def _gpu_info() -> dict:
    """What run.json records of the GPU (through torch)."""
    import torch

    from bench.supervisor import query

    props = torch.cuda.get_device_properties(0)
    driver = query(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])[1].strip()
    return {"name": props.name, "capability": f"{props.major}.{props.minor}",
            "memory_gb": round(props.total_memory / 2**30, 1), "multiprocessors": props.multi_processor_count,
            "cuda_runtime": torch.version.cuda, "driver": driver}


def _setup_torch(threads: int, device: str, tf32: bool) -> dict:
    import torch

    torch.set_num_threads(threads)
    # fp32 means fp32: TF32 tensor-core matmuls only with --tf32 (recorded)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    info = {"torch_num_threads": torch.get_num_threads(), "threads_used": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(), "torch_version": torch.__version__,
            "tf32": tf32, "inductor_cache": os.environ.get("TORCHINDUCTOR_CACHE_DIR", ""),
            "torch_build": f"cuda {torch.version.cuda}" if torch.version.cuda else "cpu"}
    if device == "cuda":
        info["gpu"] = _gpu_info()
    return info


def _setup_jax(threads: int, device: str, tf32: bool) -> dict:
    import jax

    jax.config.update("jax_default_matmul_precision", "tensorfloat32" if tf32 else "highest")
    # XLA's CPU client sizes its thread pool from the affinity mask (pin_cpus).
    return {"tf32": tf32, "jax_version": jax.__version__, "jax_devices": [str(d) for d in jax.devices()],
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "threads_used": len(os.sched_getaffinity(0)),
            "compilation_cache": jax.config.jax_compilation_cache_dir}


def _setup_c(threads: int, device: str, tf32: bool) -> dict:
    from models import cbuild

    why = cbuild.unavailable_reason()  # a missing compiler or BLAS makes the rows unavailable
    if why:
        raise ImportError(why)
    used = cbuild.set_threads(threads)  # OpenBLAS's own setting, shared by every C library
    return {"openblas_threads": used, "threads_used": used, "blas_library": cbuild.blas()._name,
            "c_cache": str(cbuild.cache_root())}


def _setup_none(threads: int, device: str, tf32: bool) -> dict:
    return {}


def _matmul_numpy(a, b, device):
    import numpy as np

    out = np.empty((a.shape[0], b.shape[1]), np.float32)
    return lambda: np.matmul(a, b, out=out)


def _matmul_torch(a, b, device):
    import torch

    ta, tb = torch.from_numpy(a).to(device), torch.from_numpy(b).to(device)
    out = torch.empty(a.shape[0], b.shape[1], device=device)
    if device == "cuda":
        return lambda: (torch.mm(ta, tb, out=out), torch.cuda.synchronize())
    return lambda: torch.mm(ta, tb, out=out)


def _matmul_jax(a, b, device):
    import jax
    import jax.numpy as jnp

    f = jax.jit(jnp.matmul)
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    return lambda: f(ja, jb).block_until_ready()


def _matmul_c(a, b, device):
    import numpy as np

    from models import cbuild

    out = np.empty((a.shape[0], b.shape[1]), np.float32)
    n = a.shape[0]
    return lambda: cbuild.square_sgemm(n, a.ctypes.data, b.ctypes.data, out.ctypes.data)


FRAMEWORKS: dict[str, Framework] = {
    "numpy": Framework("numpy", _setup_none, _matmul_numpy, {"loop": ("#4c72b0", "o")}),
    "torch": Framework("torch", _setup_torch, _matmul_torch, {
        "eager": ("#dd8452", "s"), "compile": ("#c44e52", "D"), "fullgraph": ("#e377c2", "h"),
        "cudagraphs": ("#bcbd22", "d"), "scan": ("#8c564b", "p")}, "torch_profile"),
    "jax": Framework("jax", _setup_jax, _matmul_jax, {
        "eager": ("#55a868", "^"), "jit": ("#8172b3", "v"), "scan": ("#937860", "P")}, "jax_profile"),
    "c": Framework("c", _setup_c, _matmul_c, {"ref": ("#222222", "*"), "step": ("#777777", "X")}),
    "null": Framework("null", _setup_none, None),
}


def get(name: str) -> Framework:
    """ImportError for a framework this harness does not know (its rows become unavailable)."""
    if name not in FRAMEWORKS:
        raise ImportError(f"unknown framework {name!r}")
    return FRAMEWORKS[name]


def style(impl: str) -> tuple[str, str]:
    """(colour, marker) of an implementation name in every plot; grey dots for unknown ones."""
    fw, _, mode = impl.partition(".")
    return FRAMEWORKS[fw].styles.get(mode, ("#999999", ".")) if fw in FRAMEWORKS else ("#999999", ".")


def setup(name: str, threads: int, device: str = "cpu", tf32: bool = False) -> tuple[dict, object]:
    """Import the framework, apply the thread count (and TF32 on CUDA); (what it uses, a handle
    to keep alive: NumPy's BLAS and any OpenMP runtime stay limited while it lives)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    info: dict = {"framework": name, "pid": os.getpid(), "affinity": sorted(os.sched_getaffinity(0)), "device": device}
    info.update(get(name).setup(threads, device, tf32))
    limits = threadpool_limits(limits=threads)
    info["threadpools"] = [{k: p.get(k) for k in ("user_api", "internal_api", "num_threads", "version", "prefix",
                                                  "architecture")} for p in threadpool_info()]
    info["kernels"] = kernels.worker_kernels(name)
    if "threads_used" not in info:  # numpy: its BLAS pool; null: nothing but the affinity
        blas = [p["num_threads"] for p in info["threadpools"] if p["user_api"] == "blas"]
        info["threads_used"] = blas[0] if blas and name == "numpy" else len(info["affinity"])
    return info, limits


def copy_call(name: str, nbytes: int) -> Callable[[], object]:
    """A copy of nbytes within the device's memory, synced on return: NumPy for the CPU's memory
    bandwidth, torch or jax for a GPU's."""
    if name == "numpy":
        import numpy as np

        src, dst = np.ones(nbytes // 4, np.float32), np.empty(nbytes // 4, np.float32)
        return lambda: np.copyto(dst, src)
    if name == "torch":
        import torch

        src = torch.empty(nbytes // 4, device="cuda")
        dst = torch.empty_like(src)
        return lambda: (dst.copy_(src), torch.cuda.synchronize())
    import jax
    import jax.numpy as jnp

    src = jnp.ones(nbytes // 4, jnp.float32)
    f = jax.jit(lambda x: x + 0)  # one read and one write of every element
    return lambda: f(src).block_until_ready()
