"""`bench compare RUN_A RUN_B`: per case, medians, ratio B/A with a bootstrap CI, and whether the
difference is significant (two-sided Mann-Whitney U on the raw per-step samples, p < ALPHA)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from bench.results import read_meta, read_results, read_samples
from bench.timing import per_step_s

ALPHA = 0.01  # significance threshold of the Mann-Whitney U test
N_BOOT = 1000
MAX_BOOT_SAMPLES = 4000  # bootstrap on a random subset of at most this many samples per case


def per_step(samples: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    s = samples.assign(t=per_step_s(samples["call_ns"], samples["steps_per_call"]))
    return {k: g["t"].to_numpy() for k, g in s.groupby(["impl", "size"])}


def ratio_ci(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile-bootstrap CI of median(b) / median(a)."""
    a = rng.choice(a, MAX_BOOT_SAMPLES, replace=False) if a.size > MAX_BOOT_SAMPLES else a
    b = rng.choice(b, MAX_BOOT_SAMPLES, replace=False) if b.size > MAX_BOOT_SAMPLES else b
    ma = np.median(rng.choice(a, (N_BOOT, a.size)), axis=1)
    mb = np.median(rng.choice(b, (N_BOOT, b.size)), axis=1)
    lo, hi = np.percentile(mb / ma, [2.5, 97.5])
    return float(lo), float(hi)


def header_flags(meta_a: dict, meta_b: dict) -> list[str]:
    """Differences that make the two runs not like for like."""
    flags = []
    ma, mb = meta_a.get("machine", {}), meta_b.get("machine", {})
    for key in ("cpu_model", "host", "cores_logical"):
        if ma.get(key) != mb.get(key):
            flags.append(f"different machine: {key} {ma.get(key)!r} vs {mb.get(key)!r}")
    va, vb = ma.get("versions", {}) or {}, mb.get("versions", {}) or {}
    for lib in sorted(set(va) | set(vb)):
        if va.get(lib) != vb.get(lib) and va.get(lib) and vb.get(lib):
            flags.append(f"different {lib}: {va.get(lib)} vs {vb.get(lib)}")
    ta, tb = meta_a.get("settings", {}).get("threads"), meta_b.get("settings", {}).get("threads")
    if ta != tb:
        flags.append(f"different threads: {ta} vs {tb}")
    return flags


def compare_runs(run_a: Path, run_b: Path, seed: int = 0) -> tuple[pd.DataFrame, list[str], list[str]]:
    """(one row per case in both, header flags, cases only in one run)."""
    ra, rb = read_results(run_a), read_results(run_b)
    sa, sb = per_step(read_samples(run_a)), per_step(read_samples(run_b))
    flags = header_flags(read_meta(run_a), read_meta(run_b))
    ka = {(r["impl"], r["size"]) for _, r in ra[ra["status"] == "ok"].iterrows()}
    kb = {(r["impl"], r["size"]) for _, r in rb[rb["status"] == "ok"].iterrows()}
    only = [f"{i} {z}: only in A" for i, z in sorted(ka - kb)] + [f"{i} {z}: only in B" for i, z in sorted(kb - ka)]
    rng = np.random.default_rng(seed)
    rows = []
    for key in [k for k in zip(ra["impl"], ra["size"], strict=True) if k in ka & kb]:
        a, b = sa[key], sb[key]
        lo, hi = ratio_ci(a, b, rng)
        p = float(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue)
        med_a, med_b = float(np.median(a)), float(np.median(b))
        rows.append({
            "impl": key[0], "size": key[1], "median_a_s": med_a, "median_b_s": med_b,
            "ratio_b_a": med_b / med_a, "ratio_ci_low": lo, "ratio_ci_high": hi, "p_value": p,
            "significant": p < ALPHA, "n_a": a.size, "n_b": b.size,
        })
    return pd.DataFrame(rows), flags, only


def slower_beyond(df: pd.DataFrame, pct: float) -> pd.DataFrame:
    """Cases significantly slower in B by more than pct percent."""
    if df.empty:
        return df
    return df[df["significant"] & (df["ratio_b_a"] > 1 + pct / 100)]


def fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else (f"{x * 1e6:.3g}")
