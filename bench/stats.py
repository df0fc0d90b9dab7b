"""Summary statistics of raw timing samples (seconds)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

CV_NOISY = 0.10  # coefficient of variation above which a row is flagged noisy (as pyperf warns)
CI_NOISY = 0.05  # ... or a 95% CI of the median wider than +-5% of the median
ROUNDS_NOISY = 0.10  # ... or per-round medians more than 10% apart (drift between rounds)


def median_ci(x: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median from binomial order statistics.

    The ranks j < k are chosen so that P(x_(j) <= median <= x_(k)) >= level under Binomial(n, 1/2);
    with too few samples for that, (min, max).
    """
    xs = np.sort(np.asarray(x, dtype=float))
    n = xs.size
    if n == 0:
        return math.nan, math.nan
    # 1-based ranks (r, n + 1 - r) cover the median with probability 1 - 2 P(B <= r - 1),
    # B ~ Binomial(n, 1/2): take the largest r that keeps that >= level.
    r = int(sps.binom.ppf((1.0 - level) / 2, n, 0.5))  # smallest r with P(B <= r) >= alpha/2
    while r >= 1 and 2 * sps.binom.cdf(r - 1, n, 0.5) > 1.0 - level:
        r -= 1
    if r < 1:
        return float(xs[0]), float(xs[-1])
    return float(xs[r - 1]), float(xs[n - r])


def summarize(samples_s: np.ndarray) -> dict[str, float]:
    """median, iqr, min, mean, cv, 95% CI of the median, n; NaNs when empty."""
    x = np.asarray(samples_s, dtype=float)
    if x.size == 0:
        keys = ("median_s", "iqr_s", "min_s", "mean_s", "cv", "ci_low_s", "ci_high_s")
        return {**{k: math.nan for k in keys}, "n_samples": 0}
    q25, med, q75 = np.percentile(x, [25, 50, 75])
    mean = float(x.mean())
    lo, hi = median_ci(x)
    return {
        "median_s": float(med),
        "iqr_s": float(q75 - q25),
        "min_s": float(x.min()),
        "mean_s": mean,
        "cv": float(x.std(ddof=1) / mean) if x.size > 1 and mean > 0 else 0.0,
        "ci_low_s": lo,
        "ci_high_s": hi,
        "n_samples": int(x.size),
    }


def noisy_reason(s: dict[str, float], spread: float = 0.0) -> str:
    """'' for a steady row, else which rule it broke. spread: `round_spread` of the row."""
    why = []
    if s["n_samples"] and s["cv"] > CV_NOISY:
        why.append(f"cv {s['cv']:.0%} > {CV_NOISY:.0%}")
    med = s["median_s"]
    if s["n_samples"] and med > 0:
        half = max(med - s["ci_low_s"], s["ci_high_s"] - med) / med
        if half > CI_NOISY:
            why.append(f"median CI +-{half:.0%} > {CI_NOISY:.0%}")
    if spread > ROUNDS_NOISY:
        why.append(f"round medians {spread:.0%} apart > {ROUNDS_NOISY:.0%}")
    return "; ".join(why)


def round_spread(round_medians: list[float]) -> float:
    """(max - min) / median of the per-round medians: how much rounds disagree."""
    m = np.asarray(round_medians, dtype=float)
    if m.size < 2:
        return 0.0
    return float((m.max() - m.min()) / np.median(m))
