"""The C pipeline program (models/cpipe.c + the model's stage, models/<model>/<model>_pipe.c),
compiled against the scipy-openblas32 BLAS and the MPI of the `mpich` wheel (both installed by
the project's own install command; no system MPI is assumed), cached like every C build
(models/cbuild.py: keyed by the sources, the command and the compiler's version)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from models import cbuild

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def mpi_prefix() -> Path:
    """Where mpiexec (bin/), mpi.h (include/) and libmpi (lib/) are: $BENCH_MPI_PREFIX (another MPI
    of the same ABI, a cluster's own), else this interpreter's prefix, where the mpich wheel puts them."""
    return Path(os.environ.get("BENCH_MPI_PREFIX") or sys.prefix)


def mpiexec() -> str:
    return str(mpi_prefix() / "bin" / "mpiexec")


def unavailable_reason() -> str:
    """'' when the C pipeline can be built and started here, else why its rows cannot run."""
    why = cbuild.unavailable_reason()
    if why:
        return why
    p = mpi_prefix()
    if not (p / "include" / "mpi.h").is_file() or not os.access(mpiexec(), os.X_OK):
        return f"MPI not found under {p} (the mpich wheel: pip install -c constraints.txt -e '.[all]')"
    return ""


def build(stage_source: Path) -> Path:
    """The program for one model's stage; RuntimeError with the compiler's last lines on failure."""
    import scipy_openblas32 as blas

    why = unavailable_reason()
    if why:
        raise RuntimeError(why)
    sources = [MODELS_DIR / "cpipe.c", Path(stage_source)]
    p, lib = mpi_prefix(), blas.get_lib_dir()
    cmd = [cbuild.compiler(), *[f for f in cbuild.CFLAGS if f not in ("-fPIC", "-shared")], *map(str, sources),
           f"-I{blas.get_include_dir()}", f"-I{p / 'include'}", f"-L{lib}", f"-l{blas.get_library()}",
           f"-Wl,-rpath,{lib}", f"-L{p / 'lib'}", "-lmpi", f"-Wl,-rpath,{p / 'lib'}", "-lm"]
    text = "\0".join([*(s.read_text() for s in [*sources, MODELS_DIR / "cpipe.h", Path(stage_source).with_name(
        Path(stage_source).name.replace("_pipe", ""))]), *cmd])
    version = subprocess.run([cmd[0], "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256((text + version).encode()).hexdigest()[:16]
    path = cbuild.cache_root() / key / Path(stage_source).stem
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    res = subprocess.run([*cmd, "-o", tmp], capture_output=True, text=True)
    if res.returncode != 0:
        Path(tmp).unlink(missing_ok=True)
        tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"C pipeline build failed: {tail}")
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return path



