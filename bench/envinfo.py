"""What a run records about the machine and software (the runner side: no torch or jax import)."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import psutil

PACKAGES = ("numpy", "scipy", "pandas", "torch", "jax", "jaxlib", "threadpoolctl", "pytest-benchmark")

# Environment variables that change performance; workers get them passed on explicitly.
PERF_ENV = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "XLA_FLAGS", "JAX_PLATFORMS",
    "JAX_ENABLE_X64", "TORCHINDUCTOR_CACHE_DIR", "TORCH_COMPILE_DISABLE", "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "KMP_AFFINITY", "CUDA_VISIBLE_DEVICES", "PYTHONHASHSEED",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (sha + ("-dirty" if dirty else "")) or None


def collect() -> dict:
    vm = psutil.virtual_memory()
    return {
        "host": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "cores_allowed": len(os.sched_getaffinity(0)),
        "memory_total_gb": round(vm.total / 2**30, 2),
        "memory_available_gb": round(vm.available / 2**30, 2),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "versions": versions(),
        "git_commit": git_commit(),
        "env": {k: os.environ[k] for k in PERF_ENV if k in os.environ},
    }
