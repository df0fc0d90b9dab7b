"""The C + BLAS MLP (models/c/mlp.c), built with the machine's C compiler on first use.

`c.ref` runs K steps in one call (no Python between steps: the floor); `c.step` one call per
step (adds the cost of crossing from Python into C through ctypes). The shared library is cached
under $BENCH_C_CACHE (default ~/.cache/framework-overhead-bench/c), keyed by a hash of the
source, the compile command and the compiler's version, so a source change rebuilds it. CC
chooses the compiler (default cc).
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from models.mlp import MLPConfig, init_params, make_batch

SOURCE = Path(__file__).parent / "c" / "mlp.c"
CFLAGS = ["-O3", "-march=native", "-std=c11", "-fPIC", "-shared"]  # no -ffast-math: same IEEE rules as the frameworks


def compiler() -> str:
    return os.environ.get("CC") or "cc"


def unavailable_reason() -> str:
    """'' when a compiler and the BLAS are there, else why the C rows cannot run."""
    if shutil.which(compiler()) is None:
        return f"C compiler {compiler()!r} not found (install one or set CC)"
    if importlib.util.find_spec("scipy_openblas32") is None:
        return "scipy-openblas32 not installed (pip install -c constraints.txt -e '.[all]')"
    return ""


def cache_root() -> Path:
    if os.environ.get("BENCH_C_CACHE"):
        return Path(os.environ["BENCH_C_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "framework-overhead-bench" / "c"


def build(source: Path = SOURCE, cache: Path | None = None) -> tuple[Path, bool]:
    """Compile `source` into a shared library unless the cache has it: (path, built_now).

    RuntimeError with the compiler's last lines if the build fails."""
    why = unavailable_reason()
    if why:
        raise RuntimeError(why)
    import scipy_openblas32 as blas

    cc = compiler()
    cmd = [cc, *CFLAGS, str(source), f"-I{blas.get_include_dir()}", f"-L{blas.get_lib_dir()}",
           f"-l{blas.get_library()}", f"-Wl,-rpath,{blas.get_lib_dir()}", "-lm"]
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256("\0".join([Path(source).read_text(), *cmd, version]).encode()).hexdigest()[:16]
    path = (cache or cache_root()) / key / "libmlp.so"
    if path.is_file():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".so.tmp")
    os.close(fd)
    p = subprocess.run([*cmd, "-o", tmp], capture_output=True, text=True)
    if p.returncode != 0:
        Path(tmp).unlink(missing_ok=True)
        tail = " | ".join((p.stderr or p.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"C build failed ({' '.join(cmd[:2])} ...): {tail}")
    os.replace(tmp, path)  # atomic: a concurrent builder never loads half a library
    return path, True


_lib = None


def load() -> ctypes.CDLL:
    """Build if needed, load once per process, declare the argument types."""
    global _lib
    if _lib is None:
        path, _ = build()
        lib = ctypes.CDLL(str(path))
        p = ctypes.c_void_p
        lib.mlp_train.argtypes = [p, ctypes.c_float, p, p, p, p, p, ctypes.c_int, p]
        lib.mlp_train.restype = ctypes.c_int
        lib.mlp_set_threads.argtypes = [ctypes.c_int]
        lib.mlp_get_threads.restype = ctypes.c_int
        lib.square_sgemm.argtypes = [ctypes.c_int, p, p, p]
        _lib = lib
    return _lib


def ops_per_step(cfg: MLPConfig) -> int:
    """Layer-function calls in one C step (n = L + 1 layers): n linear + L relu + softmax forward;
    softmax backward + n linear + L relu backward; one update."""
    n = cfg.depth + 1
    return 2 * n + 2 * cfg.depth + 3


class CStep:
    def __init__(self, cfg: MLPConfig, k: int) -> None:
        self.cfg, self.steps_per_call = cfg, k
        self.lib = load()
        self.init = init_params(cfg)
        self.flat0 = np.concatenate([p.ravel() for p in self.init])  # [W0, b0, W1, b1, ...]
        self.flat = self.flat0.copy()
        self.grads = np.zeros_like(self.flat)
        b, dims = cfg.batch, cfg.layer_dims()
        n_acts = sum(b * fo for _, fo in dims) + 2 * b * cfg.classes + cfg.depth * b * cfg.width
        self.acts = np.zeros(n_acts, np.float32)  # z_i, probs, dlogits, dh_i (see mlp.c)
        x, y = make_batch(cfg)
        self.x, self.y = np.ascontiguousarray(x), np.ascontiguousarray(y, np.int64)  # (B, D), (B,)
        self.dims = np.array([b, cfg.d_in, cfg.width, cfg.depth, cfg.classes], np.int32)
        self.loss_buf = np.empty(max(k, 1), np.float32)
        self._args = [a.ctypes.data for a in (self.dims,)] + [cfg.lr] + [
            a.ctypes.data for a in (self.flat, self.grads, self.acts, self.x, self.y)
        ]

    def _train(self, k: int, out: np.ndarray) -> None:
        if self.lib.mlp_train(*self._args, k, out.ctypes.data) != 0:
            raise ValueError(f"mlp_train cannot lay out {self.cfg}")

    def call(self) -> None:
        self._train(self.steps_per_call, self.loss_buf)

    def losses(self, n: int) -> np.ndarray:
        out = np.empty(n, np.float32)
        self._train(n, out)
        return out.astype(np.float64)

    def params(self) -> list[np.ndarray]:
        out, i = [], 0
        for p in self.init:
            out.append(self.flat[i:i + p.size].reshape(p.shape).copy())
            i += p.size
        return out

    def count_ops(self) -> int:
        return ops_per_step(self.cfg)

    def reset(self) -> None:
        self.flat[...] = self.flat0


def build_ref(cfg: MLPConfig, k: int) -> CStep:
    return CStep(cfg, k)


def build_step(cfg: MLPConfig) -> CStep:
    return CStep(cfg, 1)
