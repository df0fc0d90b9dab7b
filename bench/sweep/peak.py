"""The ceiling: a large float32 matrix product per framework, timed like every case.

Imported only inside a worker (it imports the worker's framework).
"""

from __future__ import annotations

import numpy as np

from bench import frameworks
from bench.timing import Budget, sample, warm_up


def measure(framework: str, n: int, budget: Budget, device: str = "cpu") -> dict:
    """Median and best GFLOP/s of (n, n) @ (n, n); the copy bandwidth in GB/s (read + write) of
    the GPU (torch, jax) or of the CPU's memory (numpy)."""
    fw = frameworks.get(framework)
    if fw.matmul is None:
        raise ValueError(f"no matmul peak for framework {framework!r}")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = {
        "n": n,
        "flops": 2.0 * n**3,
        "device": device,
        **_measure(fw.matmul(a, b, device), budget, 2.0 * n**3),
    }
    if frameworks.measures_bandwidth(framework, device):  # the device's memory bandwidth
        nbytes = 1 << 30 if device == "cuda" else 1 << 28
        # bytes read + written
        copy = _measure(frameworks.copy_call(framework, nbytes, device), budget, 2.0 * nbytes)
        out["copy_gbytes_per_s"] = copy["gflops"]
    return out


def _measure(call, budget: Budget, work: float) -> dict:
    """Time call like a case; work per call -> rate in G units per second."""
    call()
    warm_up(call, budget)
    # pragma: no mutate (dtype: int nanoseconds give the same median and min)
    ns = np.asarray(sample(call, budget), float)
    return {
        "median_s": float(np.median(ns)) / 1e9,  # pragma: no mutate (1e9 + 1: one part per billion)
        "gflops": work / (float(np.median(ns)) / 1e9) / 1e9,
        "gflops_best": work / (float(ns.min()) / 1e9) / 1e9,
        "n_samples": int(ns.size),  # pragma: no mutate (1e9 + 1)
    }
