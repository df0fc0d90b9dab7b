"""The ceiling: a large float32 matrix product per framework, timed like every case.

Imported only inside a worker (it imports the worker's framework).
"""

from __future__ import annotations

import numpy as np

from bench.timing import Budget, sample, warm_up


def matmul_call(framework: str, n: int, device: str = "cpu"):
    """A call that computes one (n, n) @ (n, n) float32 product, synced on return."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    if framework == "numpy":
        out = np.empty((n, n), np.float32)
        return lambda: np.matmul(a, b, out=out)
    if framework == "torch":
        import torch

        ta, tb = torch.from_numpy(a).to(device), torch.from_numpy(b).to(device)
        out = torch.empty(n, n, device=device)
        if device == "cuda":
            return lambda: (torch.mm(ta, tb, out=out), torch.cuda.synchronize())
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


def copy_call(framework: str, nbytes: int):
    """A device-to-device copy of nbytes (GPU bandwidth), synced on return."""
    if framework == "torch":
        import torch

        src = torch.empty(nbytes // 4, device="cuda")
        dst = torch.empty_like(src)
        return lambda: (dst.copy_(src), torch.cuda.synchronize())
    import jax
    import jax.numpy as jnp

    src = jnp.ones(nbytes // 4, jnp.float32)
    f = jax.jit(lambda x: x + 0)  # one read and one write of every element
    return lambda: f(src).block_until_ready()


def measure(framework: str, n: int, budget: Budget, device: str = "cpu") -> dict:
    out = _measure(matmul_call(framework, n, device), budget, 2.0 * n**3)
    out = {"n": n, "flops": 2.0 * n**3, "device": device, **out}
    if device == "cuda" and framework in ("torch", "jax"):
        nbytes = 1 << 30
        copy = _measure(copy_call(framework, nbytes), budget, 2.0 * nbytes)  # bytes read + written
        out["copy_gbytes_per_s"] = copy["gflops"]
    return out


def _measure(call, budget: Budget, work: float) -> dict:
    """Time call like a case; work per call -> rate in G units per second."""
    call()
    warm_up(call, budget)
    ns = np.asarray(sample(call, budget), float)
    return {
        "median_s": float(np.median(ns)) / 1e9,
        "gflops": work / (float(np.median(ns)) / 1e9) / 1e9,
        "gflops_best": work / (float(ns.min()) / 1e9) / 1e9, "n_samples": int(ns.size),
    }
