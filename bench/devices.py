"""Which device a run uses. The runner never imports torch or jax, so it asks a subprocess."""

from __future__ import annotations

import json

from bench.supervisor import python_query

PROBE = r"""
import json
from bench.frameworks import sees_cuda
print(json.dumps(sees_cuda()))
"""


def probe_cuda(timeout_s: float = 180.0) -> dict:
    """{framework: bool, framework_error: why}: whether each GPU framework (bench/frameworks.py)
    sees a CUDA GPU."""
    _, out = python_query(PROBE, timeout_s)
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return {"probe": False, "probe_error": out.strip() or "probe failed"}


def resolve(requested: str, probe=probe_cuda) -> str:
    """'cpu' or 'cuda' for --device cpu|cuda|auto; ValueError when cuda is asked for and absent."""
    if requested == "cpu":
        return "cpu"
    seen = probe()
    if any(v for k, v in seen.items() if not k.endswith("_error")):
        return "cuda"
    if requested == "auto":
        return "cpu"
    why = (
        "; ".join(f"{k}: {v}" for k, v in seen.items() if k.endswith("_error") and v)
        or "none sees one"
    )
    raise ValueError(f"--device cuda: no CUDA GPU visible here ({why}); use --device cpu or auto")
