"""What kernels each library really runs, and whether the environment holds one below the CPU.

The CPU's own ISA comes from /proc/cpuinfo; each worker reports, after its framework's setup,
every BLAS threadpoolctl sees (library, version, architecture, threads), torch's CPU capability,
BLAS and oneDNN, and what XLA was told. `handicaps()` compares them with the CPU and says which
library runs below it and why; `--native-kernels` clears, for the workers only, the variables
that hold a library below the CPU (NATIVE_CLEARS).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Environment variables that change kernels or threads, wherever they are set (recorded in
# run.json).
KERNEL_ENV = re.compile(
    r"^(OPENBLAS_|GOTO|MKL_|DNNL_|ONEDNN_|ATEN_CPU_CAPABILITY|XLA_|OMP_|KMP_|GOMP_|"
    r"TORCHINDUCTOR_|TORCH_|BLIS_|JAX_|NPY_|OPENMP_)"
)
# What --native-kernels clears for the workers: each holds a library below the CPU's own choice.
NATIVE_CLEARS = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_VERBOSE",
    "GOTOBLAS_CORETYPE",
    "MKL_DEBUG_CPU_TYPE",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_CBWR",
    "ATEN_CPU_CAPABILITY",
    "DNNL_MAX_CPU_ISA",
    "ONEDNN_MAX_CPU_ISA",
)
XLA_ISA_FLAG = re.compile(r"--xla_cpu_max_isa=\S+")

# ISA levels, lowest first, and the names libraries give them.
LEVELS = ("sse", "avx", "avx2", "avx512", "amx")
OPENBLAS_LEVEL = {  # OpenBLAS core types (threadpoolctl's `architecture`)
    "prescott": "sse",
    "core2": "sse",
    "nehalem": "sse",
    "penryn": "sse",
    "dunnington": "sse",
    "atom": "sse",
    "opteron": "sse",
    "barcelona": "sse",
    "bobcat": "sse",
    "sandybridge": "avx",
    "bulldozer": "avx",
    "piledriver": "avx",
    "steamroller": "avx",
    "excavator": "avx",
    "haswell": "avx2",
    "zen": "avx2",
    "skylake": "avx2",
    "skylakex": "avx512",
    "cooperlake": "avx512",
    "sapphirerapids": "amx",
}
TORCH_LEVEL = {
    "default": "sse",
    "no_avx": "sse",
    "avx": "avx",
    "avx2": "avx2",
    "avx512": "avx512",
    "zvector": "sse",
    "sve256": "sse",
}
VARIABLE_FOR = {
    "openblas": ("OPENBLAS_CORETYPE", "GOTOBLAS_CORETYPE"),
    "torch": ("ATEN_CPU_CAPABILITY",),
    "mkl": ("MKL_DEBUG_CPU_TYPE", "MKL_ENABLE_INSTRUCTIONS"),
}


def cpu_isa(text: str | None = None) -> dict:
    """{model, family, flags (the vector ones), level}: the CPU's own ISA (/proc/cpuinfo)."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            text = ""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = fields.get("flags", "").split()
    vector = sorted(f for f in flags if f.startswith(("sse", "avx", "fma", "amx")))
    mhz = float(fields.get("cpu MHz", "0") or 0)
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4  # float32 per FMA
    level = (
        "amx"
        if "amx_tile" in flags
        else "avx512"
        if "avx512f" in flags
        else "avx2"
        if "avx2" in flags
        else "avx"
        if "avx" in flags
        else "sse"
    )
    return {
        "model": fields.get("model name", ""),
        "family": fields.get("cpu family", ""),
        "flags": vector,
        "level": level,
        "mhz": mhz,
        # cores x 2 FMA units (assumed) x lanes x 2 FLOP x clock: the peak the ISA allows
        "theoretical_gflops": round(os.cpu_count() * 2 * lanes * 2 * mhz / 1e3, 1) if mhz else None,
    }


def kernel_env(environ: dict | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    return {k: v for k, v in sorted(env.items()) if KERNEL_ENV.match(k)}


def native_env(environ: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(the environment without what holds a library below the CPU, what was cleared)."""
    env, cleared = dict(environ), {}
    for k in NATIVE_CLEARS:
        if k in env:
            cleared[k] = env.pop(k)
    if XLA_ISA_FLAG.search(env.get("XLA_FLAGS", "")):
        cleared["XLA_FLAGS"] = env["XLA_FLAGS"]
        env["XLA_FLAGS"] = XLA_ISA_FLAG.sub("", env["XLA_FLAGS"]).strip()
    return env, cleared


def handicaps(
    cpu: dict, kernels: dict[str, dict], env: dict[str, str], openblas_users: tuple[str, ...] = ()
) -> list[str]:
    """One sentence per library that runs below the CPU's ISA, with the cause where the
    environment names one. kernels: framework -> frameworks.worker_kernels(); openblas_users:
    the frameworks whose matmuls go through OpenBLAS (frameworks.blas_users)."""
    have = LEVELS.index(cpu["level"])
    found: dict[str, tuple[str, list[str]]] = {}  # library -> (its level, frameworks)
    for fw, k in kernels.items():
        for pool in k.get("blas", []):
            arch = str(pool.get("architecture") or "").lower()
            if (
                pool.get("internal_api") == "openblas"
                and arch in OPENBLAS_LEVEL
                and fw in openblas_users
            ):
                found.setdefault(f"openblas:{arch}", (OPENBLAS_LEVEL[arch], []))[1].append(fw)
        cap = str(k.get("torch", {}).get("cpu_capability", "")).lower()
        if cap in TORCH_LEVEL:
            found.setdefault(f"torch:{cap}", (TORCH_LEVEL[cap], []))[1].append(fw)
    out = []
    for key, (level, fws) in found.items():
        lib, arch = key.split(":")
        if LEVELS.index(level) >= min(have, LEVELS.index("avx512")):
            continue
        set_vars = [f"{v}={env[v]}" for v in VARIABLE_FOR.get(lib, ()) if v in env]
        why = (
            f"because {' and '.join(set_vars)} is set"
            if set_vars
            else "by its build or its own dispatch"
        )
        name = "OpenBLAS" if lib == "openblas" else "PyTorch's ATen"
        out.append(
            f"{name} ({', '.join(sorted(set(fws)))}) runs {arch} ({level.upper()}) kernels on a "
            "CPU with "
            f"{cpu['level'].upper()} {why}; {', '.join(sorted(set(fws)))} "
            f"{'is' if len(set(fws)) == 1 else 'are'} handicapped (bench run --native-kernels "
            "clears it "
            "for the workers)"
        )
    for v in (
        "MKL_DEBUG_CPU_TYPE",
        "MKL_ENABLE_INSTRUCTIONS",
        "DNNL_MAX_CPU_ISA",
        "ONEDNN_MAX_CPU_ISA",
    ):
        if v in env:
            out.append(
                f"{v}={env[v]} is set: MKL or oneDNN may run below the CPU (bench run "
                "--native-kernels clears it)"
            )
    if XLA_ISA_FLAG.search(env.get("XLA_FLAGS", "")):
        out.append(
            f"XLA_FLAGS limits XLA's CPU ISA ({XLA_ISA_FLAG.search(env['XLA_FLAGS']).group(0)})"
        )
    return out
