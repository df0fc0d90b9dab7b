"""Compile a C source against the scipy-openblas32 BLAS on first use, cache it, load it with ctypes.

Any C implementation uses this: `load(source, declare)` returns the loaded library. The shared
library is cached under $BENCH_C_CACHE (default ~/.cache/framework-overhead-bench/c), keyed by a
hash of the source, the compile command and the compiler's version, so a source change rebuilds
it and leaves the old build alone. CC chooses the compiler (default cc). The BLAS's own thread
setting and a plain sgemm (for the peak) go through the BLAS library itself, not through any
model's code.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

# llm.c's choice (it builds with -Ofast): -ffast-math lets GCC vectorize expf and tanhf through
# glibc's vector math library; the GPT's step at C = 32 goes from 3.1 to 0.8 ms with it (2 threads).
# The equivalence gate holds either way; NaN handling does not matter here (the harness checks
# the losses for finiteness in Python).
CFLAGS = ["-O3", "-march=native", "-ffast-math", "-std=c11", "-fPIC", "-shared"]


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


def compile_command(source: Path) -> list[str]:
    import scipy_openblas32 as blas

    return [
        compiler(),
        *CFLAGS,
        str(source),
        f"-I{blas.get_include_dir()}",
        f"-L{blas.get_lib_dir()}",
        f"-l{blas.get_library()}",
        f"-Wl,-rpath,{blas.get_lib_dir()}",
        "-lm",
    ]


def build(source: Path, cache: Path | None = None) -> tuple[Path, bool]:
    """Compile `source` into a shared library unless the cache has it: (path, built_now).

    RuntimeError with the compiler's last lines if the build fails."""
    why = unavailable_reason()
    if why:
        raise RuntimeError(why)
    source = Path(source)
    cmd = compile_command(source)
    version = subprocess.run([cmd[0], "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256("\0".join([source.read_text(), *cmd, version]).encode()).hexdigest()[:16]
    path = (cache or cache_root()) / key / f"lib{source.stem}.so"
    if path.is_file():
        return path, False
    compile_to(cmd, path)
    return path, True


def compile_to(cmd: list[str], path: Path) -> None:
    """Run the compile command into `path` through a temporary file renamed at the end (atomic: a
    concurrent builder never loads or runs half a build); RuntimeError with the last lines on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    p = subprocess.run([*cmd, "-o", tmp], capture_output=True, text=True)
    if p.returncode != 0:
        Path(tmp).unlink(missing_ok=True)
        tail = " | ".join((p.stderr or p.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"C build failed ({' '.join(cmd[:2])} ...): {tail}")
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


def build_program(sources: list[Path], headers: list[Path], flags: list[str]) -> Path:
    """An executable from `sources` (C, against the BLAS, plus `flags`: more include and library
    options), cached like `build` (keyed by the sources, the headers, the command and the compiler's
    version; named after the last source). RuntimeError with the compiler's last lines on failure."""
    import scipy_openblas32 as blas

    why = unavailable_reason()
    if why:
        raise RuntimeError(why)
    lib = blas.get_lib_dir()
    cmd = [
        compiler(),
        *[f for f in CFLAGS if f not in ("-fPIC", "-shared")],
        *map(str, sources),
        f"-I{blas.get_include_dir()}",
        f"-L{lib}",
        f"-l{blas.get_library()}",
        f"-Wl,-rpath,{lib}",
        *flags,
        "-lm",
    ]
    version = subprocess.run([cmd[0], "--version"], capture_output=True, text=True).stdout
    text = "\0".join([*(Path(f).read_text() for f in [*sources, *headers]), *cmd, version])
    path = cache_root() / hashlib.sha256(text.encode()).hexdigest()[:16] / Path(sources[-1]).stem
    if path.is_file():
        return path
    compile_to(cmd, path)
    return path


_loaded: dict[Path, ctypes.CDLL] = {}


def load(source: Path, declare: Callable[[ctypes.CDLL], None]) -> ctypes.CDLL:
    """Build `source` if needed, load it once per process, and let `declare` set argtypes."""
    source = Path(source)
    if source not in _loaded:
        lib = ctypes.CDLL(str(build(source)[0]))
        declare(lib)
        _loaded[source] = lib
    return _loaded[source]


_blas: ctypes.CDLL | None = None


def blas() -> ctypes.CDLL:
    """The scipy-openblas32 library that every C implementation links against (one instance
    per process: the loader shares it with the models' libraries)."""
    global _blas
    if _blas is None:
        import scipy_openblas32 as sob

        names = [
            f
            for f in os.listdir(sob.get_lib_dir())
            if f.startswith(f"lib{sob.get_library()}") and ".so" in f
        ]
        if not names:
            raise RuntimeError(f"no lib{sob.get_library()}*.so in {sob.get_lib_dir()}")
        lib = ctypes.CDLL(os.path.join(sob.get_lib_dir(), sorted(names)[0]))
        lib.scipy_openblas_set_num_threads.argtypes = [ctypes.c_int]
        lib.scipy_openblas_get_num_threads.restype = ctypes.c_int
        p, i = ctypes.c_void_p, ctypes.c_int
        lib.scipy_cblas_sgemm.argtypes = [
            i,
            i,
            i,
            i,
            i,
            i,
            ctypes.c_float,
            p,
            i,
            p,
            i,
            ctypes.c_float,
            p,
            i,
        ]
        _blas = lib
    return _blas


def set_threads(n: int) -> int:
    """OpenBLAS's own thread setting; returns the count it now reports."""
    lib = blas()
    lib.scipy_openblas_set_num_threads(n)
    return lib.scipy_openblas_get_num_threads()


ROW_MAJOR, NO_TRANS = 101, 111  # CBLAS enum values


def square_sgemm(n: int, a: int, b: int, c: int) -> None:
    """C (n, n) = A (n, n) @ B (n, n), float32 row-major, pointers as ints: the BLAS's sgemm peak."""
    blas().scipy_cblas_sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, n, n, n, 1.0, a, n, b, n, 0.0, c, n)


class FlatTrainer:
    """What the C implementations share: the parameters in one flat float32 buffer (init_params'
    order), a C `<name>_train(args..., steps, losses)` entry point that runs `steps` training
    steps, and the Step methods built on them. A subclass sets lib, train (the C function),
    args (its leading arguments), init, flat, flat0, loss_buf and steps_per_call."""

    gate = True
    op_unit = "C layer-function calls"

    def _train(self, steps: int, out) -> None:
        if self.train(*self.args, steps, out.ctypes.data) != 0:
            # pragma: no mutate (a message no supported size reaches)
            raise ValueError(f"{self.train.__name__} cannot lay out {self.cfg}")

    def call(self) -> None:
        self._train(self.steps_per_call, self.loss_buf)

    def losses(self, n: int):
        import numpy as np

        out = np.empty(n, np.float32)
        self._train(n, out)
        return out.astype(np.float64)  # pragma: no mutate (astype(None) is float64 too)

    def unflatten(self, flat) -> list:
        out, i = [], 0
        for p in self.init:
            out.append(flat[i : i + p.size].reshape(p.shape).copy())
            i += p.size
        return out

    def params(self) -> list:
        return self.unflatten(self.flat)
