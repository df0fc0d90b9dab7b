"""The results schema, written down once. Readers refuse a schema version they do not know."""

from __future__ import annotations

SCHEMA_VERSION = 2  # 2: gpt columns seq_len, heads, vocab

# results.csv: one row per case (implementation x size), stats over the samples of all rounds.
RESULT_COLUMNS: dict[str, str] = {
    "schema_version": "version of this column list",
    "run_id": "run directory name",
    "model": "mlp or gpt",
    "impl": "registry name, e.g. torch.eager",
    "framework": "numpy, torch, jax, null",
    "mode": "loop, eager, compile, jit, scan, noop",
    "device": "cpu",
    "size": "size label, e.g. B64-H256-L2",
    "sweep": "width, depth or custom: which sweep the size belongs to",
    "batch": "B",
    "width": "H (mlp) or n_embd (gpt)",
    "depth": "L hidden layers (mlp) or n_layer (gpt)",
    "d_in": "D input features (mlp only)",
    "classes": "C classes (mlp only)",
    "seq_len": "T context length (gpt only)",
    "heads": "n_head (gpt only)",
    "vocab": "vocabulary size (gpt only)",
    "flops_per_step": "matrix-product FLOPs of one training step (flops_per_step in models/mlp/model.py, models/gpt/model.py)",
    "params": "number of parameters",
    "threads": "threads every framework was given (--threads)",
    "threads_used": "threads the worker reported using: torch.get_num_threads, OpenBLAS's count (numpy, c), CPUs in the affinity mask (jax, null)",
    "status": "ok, mismatch, diverged, error, crashed, timeout, unavailable, interrupted",
    "error": "why the status is not ok (one line), else empty",
    "noisy": "True when cv > 10%, the median's 95% CI is wider than +-5%, or round medians differ > 10%",
    "noisy_reason": "which of those rules the row broke",
    "n_samples": "timed calls, all rounds together",
    "rounds": "rounds that produced samples",
    "steps_per_call": "training steps per timed call (K for jax.scan, else 1)",
    "median_s": "median seconds per training step (= per call / steps_per_call)",
    "iqr_s": "interquartile range, seconds per step",
    "min_s": "fastest sample, seconds per step",
    "mean_s": "mean, seconds per step",
    "cv": "standard deviation / mean",
    "ci_low_s": "95% CI of the median, low, seconds per step",
    "ci_high_s": "95% CI of the median, high, seconds per step",
    "median_call_s": "median seconds per timed call",
    "round_spread": "(max - min) / median of the per-round medians",
    "ops_per_step": "framework ops in one step: ATen ops (torch), jaxpr equations (jax), NumPy calls",
    "gflops": "achieved GFLOP/s: flops_per_step / median_s",
    "pct_peak": "gflops as % of this framework's measured float32 matmul peak (run.json peaks)",
    "first_call_s": "first call on a fresh build: tracing, compilation, lazy loads (not in median_s)",
    "loss_rel_err": "equivalence gate: max relative loss error vs the float64 reference",
    "update_rel_err": "equivalence gate: max relative error of the parameter updates",
    "peak_rss_mb": "peak resident memory of the worker process so far, MiB",
}

# samples.csv: every raw timed call, long format.
SAMPLE_COLUMNS: dict[str, str] = {
    "schema_version": "version of this column list",
    "impl": "registry name",
    "size": "size label",
    "round": "round index, from 0",
    "i": "sample index within the round",
    "call_ns": "perf_counter_ns duration of one call (steps_per_call steps)",
    "steps_per_call": "training steps in that call",
}

STATUSES: dict[str, str] = {
    "ok": "equivalent to the reference and timed",
    "mismatch": "failed the equivalence gate; never timed",
    "diverged": "produced a non-finite loss",
    "error": "raised an exception (message in error)",
    "crashed": "the worker process died (tail of its stderr in error)",
    "timeout": "exceeded --case-timeout; the worker was killed and replaced",
    "unavailable": "its framework is not installed or fails to import",
    "interrupted": "the run was stopped before this case finished",
}
FAILED_STATUSES = ("mismatch", "diverged", "error", "crashed", "timeout")


class SchemaError(ValueError):
    """A file written by an unknown schema version or not a run at all."""


def check_version(found: object, what: str) -> None:
    if found != SCHEMA_VERSION:
        raise SchemaError(f"{what} has schema version {found!r}; this harness reads {SCHEMA_VERSION}")
