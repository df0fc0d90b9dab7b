"""What each library runs against the CPU: the warning logic on fake CPUs and fake threadpoolctl
output (holds on any CI machine), and a real worker started with OPENBLAS_CORETYPE=Haswell."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import frameworks, kernels

USERS = frameworks.blas_users("openblas")  # numpy and c

ROOT = Path(__file__).resolve().parent.parent
AVX512 = "model name\t: Fake EPYC\ncpu family\t: 26\ncpu MHz\t\t: 3000.000\nflags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512_bf16\n"
AVX2 = "model name\t: Fake Haswell\ncpu family\t: 6\nflags\t\t: fpu sse sse2 avx avx2 fma\n"


def blas(arch: str, api: str = "openblas") -> dict:
    return {
        "blas": [{"user_api": "blas", "internal_api": api, "architecture": arch, "num_threads": 2}]
    }


def test_the_cpus_own_isa_from_cpuinfo():
    cpu = kernels.cpu_isa(AVX512)
    assert (
        cpu["level"] == "avx512"
        and cpu["family"] == "26"
        and "avx512f" in cpu["flags"]
        and "fpu" not in cpu["flags"]
    )
    assert kernels.cpu_isa(AVX2)["level"] == "avx2" and kernels.cpu_isa("")["level"] == "sse"


def test_a_haswell_openblas_on_an_avx512_cpu_is_named_with_its_cause():
    env = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"}
    (w,) = kernels.handicaps(
        kernels.cpu_isa(AVX512), {"numpy": blas("Haswell"), "c": blas("Haswell")}, env, USERS
    )
    assert w.startswith(
        "OpenBLAS (c, numpy) runs haswell (AVX2) kernels on a CPU with AVX512 because "
        "OPENBLAS_CORETYPE=Haswell is set"
    )
    (w,) = kernels.handicaps(kernels.cpu_isa(AVX512), {"numpy": blas("Haswell")}, {}, USERS)
    assert "by its build or its own dispatch" in w  # no variable to blame


def test_no_warning_where_the_library_matches_the_cpu():
    assert kernels.handicaps(kernels.cpu_isa(AVX512), {"numpy": blas("SkylakeX")}, {}, USERS) == []
    # an AVX2 CPU
    assert kernels.handicaps(kernels.cpu_isa(AVX2), {"numpy": blas("Haswell")}, {}, USERS) == []
    assert (
        kernels.handicaps(kernels.cpu_isa(AVX512), {"numpy": blas("Haswell", "mkl")}, {}, USERS)
        == []
    )  # not OpenBLAS
    torch = {"torch": {"blas": [], "torch": {"cpu_capability": "AVX512"}}}
    assert kernels.handicaps(kernels.cpu_isa(AVX512), torch, {}) == []


def test_torch_below_the_cpu_and_the_other_variables_are_named():
    torch = {"torch": {"blas": [], "torch": {"cpu_capability": "AVX2"}}}
    env = {
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_DEBUG_CPU_TYPE": "5",
        "XLA_FLAGS": "--xla_cpu_max_isa=AVX2 --x=1",
    }
    found = kernels.handicaps(kernels.cpu_isa(AVX512), torch, env)
    assert found[0].startswith(
        "PyTorch's ATen (torch) runs avx2 (AVX2) kernels on a CPU with AVX512 because "
        "ATEN_CPU_CAPABILITY=avx2 is set"
    )
    assert any(w.startswith("MKL_DEBUG_CPU_TYPE=5 is set") for w in found)
    assert any("XLA_FLAGS limits XLA's CPU ISA (--xla_cpu_max_isa=AVX2)" in w for w in found)


def test_native_env_clears_what_holds_a_library_below_the_cpu_and_keeps_the_rest():
    env = {
        "OPENBLAS_CORETYPE": "Haswell",
        "OPENBLAS_L2_SIZE": "512",
        "OMP_NUM_THREADS": "2",
        "XLA_FLAGS": "--xla_cpu_max_isa=AVX2 --xla_dump_to=/tmp",
        "PATH": "/bin",
    }
    out, cleared = kernels.native_env(env)
    assert cleared == {
        "OPENBLAS_CORETYPE": "Haswell",
        "OPENBLAS_L2_SIZE": "512",
        "XLA_FLAGS": "--xla_cpu_max_isa=AVX2 --xla_dump_to=/tmp",
    }
    assert out == {"OMP_NUM_THREADS": "2", "XLA_FLAGS": "--xla_dump_to=/tmp", "PATH": "/bin"}
    assert env["OPENBLAS_CORETYPE"] == "Haswell"  # the caller's copy is untouched
    assert kernels.kernel_env(env) == {
        "OMP_NUM_THREADS": "2",
        "OPENBLAS_CORETYPE": "Haswell",
        "OPENBLAS_L2_SIZE": "512",
        "XLA_FLAGS": env["XLA_FLAGS"],
    }


def run(tmp_path, *extra):
    out = tmp_path / "run"
    env = {**os.environ, "OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"}
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            "--impl",
            "numpy.loop",
            "--sizes",
            "1x1x2",
            "--rounds",
            "1",
            "--budget",
            "0.005",
            "--no-report",
            "--out",
            str(out),
            *extra,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads((out / "run.json").read_text()), p.stderr


@pytest.mark.slow
def test_a_worker_started_with_a_haswell_coretype_records_it_and_the_run_warns(tmp_path):
    meta, err = run(tmp_path)
    pools = meta["workers"]["numpy"]["kernels"]["blas"]
    arch = {p["internal_api"]: p["architecture"] for p in pools}
    assert arch.get("openblas") == "Haswell"
    assert meta["machine"]["env"]["OPENBLAS_CORETYPE"] == "Haswell"
    if kernels.cpu_isa()["level"] in ("avx512", "amx"):
        assert any("OPENBLAS_CORETYPE=Haswell is set" in w for w in meta["kernel_warnings"])
        assert err.count("warning: OpenBLAS (numpy) runs haswell") == 1  # once per run
    else:
        assert meta["kernel_warnings"] == []


@pytest.mark.slow
def test_native_kernels_clears_the_coretype_for_the_workers_only(tmp_path):
    meta, err = run(tmp_path, "--native-kernels")
    assert meta["native_kernels"]["cleared_for_workers"] == {
        "OPENBLAS_CORETYPE": "Haswell",
        "OPENBLAS_L2_SIZE": "512",
    }
    assert meta["settings"]["native_kernels"] is True
    arch = {
        p["internal_api"]: p["architecture"] for p in meta["workers"]["numpy"]["kernels"]["blas"]
    }
    if kernels.cpu_isa()["level"] in ("avx512", "amx"):
        assert arch.get("openblas") not in (
            "Haswell",
            None,
        )  # OpenBLAS picked the CPU's own kernels
    else:  # an AVX2 CPU's own kernels may be Haswell's (OpenBLAS's pick on a Zen 3 VM, family 25 model 1)
        assert arch.get("openblas") is not None
    # the parent's environment, as it was
    assert meta["machine"]["env"]["OPENBLAS_CORETYPE"] == "Haswell"
    assert (
        meta["kernel_warnings"] == []
        and "--native-kernels: cleared for the workers: OPENBLAS_CORETYPE" in err
    )


def test_bench_list_says_a_cuda_only_implementation_cannot_run_without_a_gpu():
    p = subprocess.run(
        [sys.executable, "-m", "bench", "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0
    line = next(ln for ln in p.stdout.splitlines() if "torch.cudagraphs" in ln)
    from bench.devices import probe_cuda

    assert ("yes" in line) == bool(probe_cuda().get("torch")), line
