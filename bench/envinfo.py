"""What a run records about the machine and software (the runner side: no torch or jax import)."""

from __future__ import annotations

import os
import platform
import socket
import sys
from importlib import metadata
from pathlib import Path

import psutil

from bench.kernels import cpu_isa, kernel_env
from bench.supervisor import query

PACKAGES = (
    "numpy",
    "scipy",
    "pandas",
    "torch",
    "jax",
    "jaxlib",
    "threadpoolctl",
    "pytest-benchmark",
)


def utc_now() -> str:
    """The time stamps of run.json (created_utc, finished_utc, resumed)."""
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


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
    code, sha = query(["git", "rev-parse", "HEAD"], 5)
    if code != 0:
        return None
    _, dirty = query(["git", "status", "--porcelain", "--untracked-files=no"], 5)
    return (sha.strip() + ("-dirty" if dirty.strip() else "")) or None


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
        "env": kernel_env(),
        "cpu_isa": cpu_isa(),
    }


def governor() -> str | None:
    """The CPU frequency governor of cpu0 (performance, powersave, ...), where the OS exposes it."""
    try:
        return Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip()
    except OSError:
        return None


def noise_start() -> dict:
    """What makes a machine noisy, at the start of a run: governor, load, CPU time counters."""
    t = psutil.cpu_times()
    return {
        "governor": governor(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "steal_s_start": getattr(t, "steal", None),
        "cpu_s_start": sum(t),
    }


def noise_end(start: dict) -> dict:
    """The start record completed: load at the end, and the share of CPU time stolen by the
    hypervisor during the run (steal time; None where the OS does not report it)."""
    t = psutil.cpu_times()
    steal = getattr(t, "steal", None)
    out = {k: v for k, v in start.items() if not k.endswith("_s_start")}
    out["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    total = sum(t) - start.get("cpu_s_start", 0.0)
    if steal is not None and start.get("steal_s_start") is not None and total > 0:
        out["steal_pct"] = round(100 * (steal - start["steal_s_start"]) / total, 2)
    else:
        out["steal_pct"] = None
    return out
