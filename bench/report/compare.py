"""`bench compare RUN_A RUN_B`: per case, the two medians, the ratio B/A with its 95% CI, whether
the case changed, and the smallest change it could have detected (`detectable`: 80% power at the
two runs' own drift and process counts, bench/stats.detectable_change), so that "no change" is
never read as "no difference".

The unit is the worker process: each run gives R per-process medians per case. The test is
Welch's t-test on their logs (unequal variances), the ratio is exp(mean log B - mean log A) with
the Welch t-interval, and a change is called only when p < ALPHA and the ratio differs from 1 by
more than a practical threshold (default 3%): a 0.9% difference, however certain, is not one a
user acts on. A/A runs and planted slowdowns validate this (tests/test_statistics.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.results import base_rounds, read_run, unit_medians
from bench.runmeta import RunMeta
from bench.stats import Drift, detectable_change, log_t_interval, spread, welch_log

ALPHA = 0.05  # two-sided significance level of Welch's t-test on log process medians
THRESHOLD = 0.03  # ... and |ratio - 1| above this, for a case to be called changed
TEST_NAME = "Welch's t-test on log per-process medians"


def header_flags(meta_a: RunMeta, meta_b: RunMeta) -> list[str]:
    """Differences that make the two runs not like for like."""
    flags = []
    ma, mb = meta_a.machine, meta_b.machine
    for key in ("cpu_model", "host", "cores_logical"):
        if ma.get(key) != mb.get(key):
            flags.append(f"different machine: {key} {ma.get(key)!r} vs {mb.get(key)!r}")
    va, vb = (
        ma.get("versions", {}) or {},
        mb.get("versions", {}) or {},
    )  # pragma: no mutate (None or {} is {})
    for lib in sorted(
        set(va) | set(vb)
    ):  # pragma: no mutate (& alike: a library in one run only is not flagged)
        if va.get(lib) != vb.get(lib) and va.get(lib) and vb.get(lib):
            flags.append(f"different {lib}: {va.get(lib)} vs {vb.get(lib)}")
    ta, tb = meta_a.settings.get("threads"), meta_b.settings.get("threads")
    if ta != tb:
        flags.append(f"different threads: {ta} vs {tb}")
    # runs before --chunks: 1
    ca, cb = (m.settings.get("chunks", 1) for m in (meta_a, meta_b))
    if ca != cb:
        flags.append(
            f"different chunks: {ca} vs {cb} (on a host that moves, a process median over chunks "
            "and one "
            "over a single stretch differ)"
        )
    return flags


def verdict(ratio: float, p: float, threshold: float) -> str:
    """'slower', 'faster', or '' (no change called)."""
    if not (math.isfinite(p) and p < ALPHA and abs(ratio - 1) > threshold):
        return ""
    # pragma: no mutate (>= alike: a ratio of 1 is never called)
    return "slower" if ratio > 1 else "faster"


def compare_runs(
    run_a: Path, run_b: Path, threshold: float = THRESHOLD
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """(one row per case ok in both, header flags, cases only in one run)."""
    # pragma: no mutate (reading the samples too: slower, same answer)
    ra, rounds_a, _, meta_a = read_run(run_a, samples=False)
    rb, rounds_b, _, meta_b = read_run(run_b, samples=False)  # pragma: no mutate (as above)
    ua, ub = unit_medians(rounds_a), unit_medians(rounds_b)
    fa, fb = (
        base_rounds(meta_a),
        base_rounds(meta_b),
    )  # rows with extra rounds: Stein's test (bench/stats.spread)
    ka = {(r.impl, r.size) for r in ra[ra["status"] == "ok"].itertuples()}
    kb = {(r.impl, r.size) for r in rb[rb["status"] == "ok"].itertuples()}
    only = [f"{i} {z}: only in A" for i, z in sorted(ka - kb)] + [
        f"{i} {z}: only in B" for i, z in sorted(kb - ka)
    ]
    rows = []
    for key in [
        k for k in zip(ra["impl"], ra["size"], strict=True) if k in ka & kb
    ]:  # pragma: no mutate (strict: two columns of one frame)
        a, b = ua[key], ub[key]
        ratio, lo, hi, p = welch_log(a, b, first_a=fa, first_b=fb)
        (sa, da), (sb, db) = _spread(a, fa), _spread(b, fb)
        rows.append(
            {
                "impl": key[0],
                "size": key[1],
                "median_a_s": log_t_interval(a)[0],
                "median_b_s": log_t_interval(b)[0],
                "ratio_b_a": ratio,
                "ratio_ci_low": lo,
                "ratio_ci_high": hi,
                "p_value": p,
                "change": verdict(ratio, p, threshold),
                "n_a": a.size,
                "n_b": b.size,
                "detectable": detectable_change(
                    Drift(sa, a.size, da), Drift(sb, b.size, db), threshold
                ),
            }
        )
    cols = [
        "impl",
        "size",
        "median_a_s",
        "median_b_s",
        "ratio_b_a",
        "ratio_ci_low",
        "ratio_ci_high",
        "p_value",
        "change",
        "n_a",
        "n_b",
        "detectable",
    ]
    return pd.DataFrame(rows, columns=cols), header_flags(meta_a, meta_b), only


def _spread(medians, first: int | None) -> tuple[float, int]:
    logs = np.log(np.asarray(medians, dtype=float))  # pragma: no mutate (equivalent: dtype only)
    return spread(logs, first) if logs.size > 1 else (math.nan, 0)


def slower_beyond(df: pd.DataFrame, pct: float) -> pd.DataFrame:
    """Cases called slower in B by more than pct percent."""
    if df.empty:
        return df
    return df[(df["change"] == "slower") & (df["ratio_b_a"] > 1 + pct / 100)]
