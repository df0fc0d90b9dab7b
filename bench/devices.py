"""Which device a run uses. The runner never imports torch or jax, so it asks a subprocess."""

from __future__ import annotations

import json

from bench.supervisor import python_query

PROBE = r"""
import json, os
out = {"torch": False, "jax": False, "torch_error": "", "jax_error": ""}
try:
    import torch
    out["torch"] = bool(torch.cuda.is_available())
except Exception as e:
    out["torch_error"] = f"{type(e).__name__}: {e}"
try:
    import jax
    out["jax"] = any(d.platform == "gpu" for d in jax.devices())
except Exception as e:
    out["jax_error"] = f"{type(e).__name__}: {e}".splitlines()[0]
print(json.dumps(out))
"""


def probe_cuda(timeout_s: float = 180.0) -> dict:
    """{'torch': bool, 'jax': bool, ...}: whether each framework sees a CUDA GPU."""
    _, out = python_query(PROBE, timeout_s)
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return {"torch": False, "jax": False, "torch_error": out.strip() or "probe failed", "jax_error": ""}


def resolve(requested: str, probe=probe_cuda) -> str:
    """'cpu' or 'cuda' for --device cpu|cuda|auto; ValueError when cuda is asked for and absent."""
    if requested == "cpu":
        return "cpu"
    seen = probe()
    if seen.get("torch") or seen.get("jax"):
        return "cuda"
    if requested == "auto":
        return "cpu"
    why = "; ".join(f"{k}: {v}" for k, v in seen.items() if k.endswith("_error") and v) or "torch and jax see none"
    raise ValueError(f"--device cuda: no CUDA GPU visible here ({why}); use --device cpu or auto")
