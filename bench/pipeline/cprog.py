"""The C pipeline program (models/cpipe.c + the model's stage, models/<model>/<model>_pipe.c, +
models/cjoin.c for several nodes), compiled against the scipy-openblas32 BLAS and the MPI of the
`mpich` wheel (both installed by the project's own install command; no system MPI is assumed),
cached like every C build (models/cbuild.py: keyed by the sources, the command and the
compiler's version), and how it is started: the wheel's gforker mpiexec, which forks this node's
ranks and listens on no socket (hydra's mpiexec listens on every interface for its proxies), and
MPICH's libfabric TCP netmod on one interface (UCX's port names do not fit MPI_MAX_PORT_NAME, so
MPI_Comm_connect could not join nodes over it)."""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

from models import cbuild

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def mpi_prefix() -> Path:
    """Where mpiexec (bin/), mpi.h (include/) and libmpi (lib/) are: $BENCH_MPI_PREFIX (another MPI
    of the same ABI, a cluster's own), else this interpreter's prefix, where the mpich wheel puts them."""
    return Path(os.environ.get("BENCH_MPI_PREFIX") or sys.prefix)


def mpiexec() -> str:
    return str(mpi_prefix() / "bin" / "mpiexec")


def launcher(ranks: int) -> list[str]:
    """The command that starts `ranks` ranks on this machine: the gforker mpiexec where the MPI has
    one, else hydra's with its fork launcher."""
    gforker = mpi_prefix() / "bin" / "mpiexec.gforker"
    if os.access(gforker, os.X_OK):
        return [str(gforker), "-n", str(ranks)]
    return [mpiexec(), "-launcher", "fork", "-n", str(ranks)]


def network_env(interface: str) -> dict[str, str]:
    """The ranks' MPI on one network interface (lo on one node; the endpoint's across nodes)."""
    return {"MPIR_CVAR_CH4_NETMOD": "ofi", "FI_PROVIDER": "tcp", "FI_TCP_IFACE": interface}


def unavailable_reason() -> str:
    """'' when the C pipeline can be built and started here, else why its rows cannot run."""
    why = cbuild.unavailable_reason()
    if why:
        return why
    p = mpi_prefix()
    if not (p / "include" / "mpi.h").is_file() or not os.access(mpiexec(), os.X_OK):
        return (
            f"MPI not found under {p} (the mpich wheel: pip install -c constraints.txt -e '.[all]')"
        )
    return launch_problem()


LAUNCH_TRIES = 3  # a launch probe fails only when every try does


@cache
def launch_problem() -> str:
    """'' when mpiexec starts a program on this machine, else why not (asked once per process)."""
    from bench.supervisor import query

    code = 0
    for _ in range(
        LAUNCH_TRIES
    ):  # hydra's mpiexec dies of SIGPIPE (exit -13) now and then when `true` exits at once
        code, _ = query([*launcher(1), "true"], 60)
        if code == 0:
            return ""
    return f"{launcher(1)[0]} cannot start a program here (exit {code})"


def build(stage_source: Path) -> Path:
    """The program for one model's stage (models/cbuild.build_program); RuntimeError on failure."""
    why = unavailable_reason()
    if why:
        raise RuntimeError(why)
    p, stage = mpi_prefix(), Path(stage_source)
    return cbuild.build_program(
        [MODELS_DIR / "cjoin.c", MODELS_DIR / "cpipe.c", stage],
        [
            MODELS_DIR / "cjoin.h",
            MODELS_DIR / "cpipe.h",
            stage.with_name(stage.name.replace("_pipe", "")),
        ],
        [f"-I{p / 'include'}", f"-L{p / 'lib'}", "-lmpi", f"-Wl,-rpath,{p / 'lib'}"],
    )
