"""What the built-in frameworks run, named by their records in bench/frameworks.py: setting up a
worker (threads, TF32; what it uses), the matmul of the machine peak, a copy for the memory
bandwidth, the kernels its libraries run, whether it sees a GPU. Each function imports its
framework when called, inside a worker or a probe subprocess."""

from __future__ import annotations

import os
import re
from collections.abc import Callable


def gpu_info() -> dict:
    """What run.json records of the GPU (through torch)."""
    import torch

    from bench.supervisor import query

    props = torch.cuda.get_device_properties(0)
    driver = query(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])[1].strip()
    return {
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_gb": round(props.total_memory / 2**30, 1),
        "multiprocessors": props.multi_processor_count,
        "cuda_runtime": torch.version.cuda,
        "driver": driver,
    }


def setup_torch(threads: int, device: str, tf32: bool) -> dict:
    import torch

    torch.set_num_threads(threads)
    # fp32 means fp32: TF32 tensor-core matmuls only with --tf32 (recorded)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    info = {
        "torch_num_threads": torch.get_num_threads(),
        "threads_used": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch_version": torch.__version__,
        "tf32": tf32,
        "inductor_cache": os.environ.get("TORCHINDUCTOR_CACHE_DIR", ""),
        "torch_build": f"cuda {torch.version.cuda}" if torch.version.cuda else "cpu",
    }
    if device == "cuda":
        info["gpu"] = gpu_info()
    return info


def setup_jax(threads: int, device: str, tf32: bool) -> dict:
    import jax

    jax.config.update("jax_default_matmul_precision", "tensorfloat32" if tf32 else "highest")
    # XLA's CPU client sizes its thread pool from the affinity mask (pin_cpus).
    return {
        "tf32": tf32,
        "jax_version": jax.__version__,
        "jax_devices": [str(d) for d in jax.devices()],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "threads_used": len(os.sched_getaffinity(0)),
        "compilation_cache": jax.config.jax_compilation_cache_dir,
    }


def setup_c(threads: int, device: str, tf32: bool) -> dict:
    from models import cbuild

    why = cbuild.unavailable_reason()  # a missing compiler or BLAS makes the rows unavailable
    if why:
        raise ImportError(why)
    used = cbuild.set_threads(threads)  # OpenBLAS's own setting, shared by every C library
    return {
        "openblas_threads": used,
        "threads_used": used,
        "blas_library": cbuild.blas()._name,
        "c_cache": str(cbuild.cache_root()),
    }


def setup_none(threads: int, device: str, tf32: bool) -> dict:
    return {}


def matmul_numpy(a, b, device):
    import numpy as np

    out = np.empty((a.shape[0], b.shape[1]), np.float32)
    return lambda: np.matmul(a, b, out=out)


def matmul_torch(a, b, device):
    import torch

    ta, tb = torch.from_numpy(a).to(device), torch.from_numpy(b).to(device)
    out = torch.empty(a.shape[0], b.shape[1], device=device)
    if device == "cuda":
        return lambda: (torch.mm(ta, tb, out=out), torch.cuda.synchronize())
    return lambda: torch.mm(ta, tb, out=out)


def matmul_jax(a, b, device):
    import jax
    import jax.numpy as jnp

    f = jax.jit(jnp.matmul)
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    return lambda: f(ja, jb).block_until_ready()


def matmul_c(a, b, device):
    import numpy as np

    from models import cbuild

    out = np.empty((a.shape[0], b.shape[1]), np.float32)
    n = a.shape[0]
    return lambda: cbuild.square_sgemm(n, a.ctypes.data, b.ctypes.data, out.ctypes.data)


def copy_numpy(nbytes: int, device: str) -> Callable[[], object]:
    """A copy of nbytes within the CPU's memory (its bandwidth)."""
    import numpy as np

    src, dst = np.ones(nbytes // 4, np.float32), np.empty(nbytes // 4, np.float32)
    return lambda: np.copyto(dst, src)


def copy_torch(nbytes: int, device: str) -> Callable[[], object]:
    """A copy of nbytes within the GPU's memory, synced."""
    import torch

    src = torch.empty(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    return lambda: (dst.copy_(src), torch.cuda.synchronize())


def copy_jax(nbytes: int, device: str) -> Callable[[], object]:
    import jax
    import jax.numpy as jnp

    src = jnp.ones(nbytes // 4, jnp.float32)
    f = jax.jit(lambda x: x + 0)  # one read and one write of every element
    return lambda: f(src).block_until_ready()


def kernels_numpy() -> dict:
    import numpy  # noqa: F401 (its BLAS is what threadpoolctl should see)

    return {}


def kernels_torch() -> dict:
    import torch

    config = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", config)
    dnnl = re.search(r"(MKL-DNN|oneDNN) v([\d.]+)", config)
    return {
        "torch": {
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "blas": blas.group(1) if blas else "",
            "onednn": dnnl.group(2) if dnnl else "",
            "onednn_max_isa": os.environ.get(
                "DNNL_MAX_CPU_ISA", os.environ.get("ONEDNN_MAX_CPU_ISA", "")
            ),
        }
    }


def kernels_jax() -> dict:
    return {
        "xla": {
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "note": "XLA's CPU client compiles "
            "for the host CPU's features unless --xla_cpu_max_isa (in XLA_FLAGS) limits it",
        }
    }


def sees_cuda_torch() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def sees_cuda_jax() -> bool:
    import jax

    return any(d.platform == "gpu" for d in jax.devices())
