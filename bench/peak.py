"""The ceiling: a large float32 matrix product per framework, timed like every case.

Imported only inside a worker (it imports the worker's framework).
"""

from __future__ import annotations

import numpy as np

from bench.timing import Budget, sample, warm_up


def matmul_call(framework: str, n: int):
    """A call that computes one (n, n) @ (n, n) float32 product, synced on return."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    if framework == "numpy":
        out = np.empty((n, n), np.float32)
        return lambda: np.matmul(a, b, out=out)
    if framework == "torch":
        import torch

        ta, tb, out = torch.from_numpy(a), torch.from_numpy(b), torch.empty(n, n)
        return lambda: torch.mm(ta, tb, out=out)
    if framework == "jax":
        import jax
        import jax.numpy as jnp

        f = jax.jit(jnp.matmul)
        ja, jb = jnp.asarray(a), jnp.asarray(b)
        return lambda: f(ja, jb).block_until_ready()
    if framework == "c":
        from models import mlp_c

        lib, out = mlp_c.load(), np.empty((n, n), np.float32)
        return lambda: lib.square_sgemm(n, a.ctypes.data, b.ctypes.data, out.ctypes.data)
    raise ValueError(f"no matmul peak for framework {framework!r}")


def measure(framework: str, n: int, budget: Budget) -> dict:
    call = matmul_call(framework, n)
    call()
    warm_up(call, budget)
    ns = np.asarray(sample(call, budget), float)
    flops = 2.0 * n**3
    return {
        "n": n, "flops": flops, "median_s": float(np.median(ns)) / 1e9,
        "gflops": flops / (float(np.median(ns)) / 1e9) / 1e9,
        "gflops_best": flops / (float(ns.min()) / 1e9) / 1e9, "n_samples": int(ns.size),
    }
