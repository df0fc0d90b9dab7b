"""Statistics of timing samples (seconds), with the worker process as the unit of replication.

Samples inside one process share its offsets (scheduling, frequency, memory layout, the JIT's
choices), so they are not independent draws of the step time. Each case runs in several
independent worker processes (one per round); every interval and test here is computed over
the per-process medians m_r, on the log scale, where a slowdown is a shift:

- center: exp(mean(log m_r)), the geometric mean of the process medians (`median_s`);
- 95% CI: exp(mean(log m_r) +- t(0.975, R - 1) sd(log m_r) / sqrt(R)) (`ci_low_s`, `ci_high_s`);
- drift between processes: sd(log m_r) (`round_sd`).

Pooled-sample statistics (pooled median, IQR, min, mean, cv) stay as descriptive columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CI_NOISY = 0.05  # a row is noisy when the 95% CI of its median is wider than +-5% ...
IQR_NOISY = 0.25  # ... or its processes' median within-process IQR exceeds 25% of their median
LEVEL = 0.95
SLOW_PROCESS = 1.3  # a process this many times its row's fastest is a slow one (slow_share)


def _sps():
    """scipy.stats, imported at first use: it takes most of a second, and every command starts
    by importing this module."""
    from scipy import stats

    return stats


def pooled(samples_s: np.ndarray) -> dict[str, float]:
    """Descriptive statistics of all samples of all processes together; NaNs when empty."""
    x = np.asarray(samples_s, dtype=float)  # pragma: no mutate (equivalent: dtype only)
    if x.size == 0:
        keys = ("pooled_median_s", "iqr_s", "min_s", "mean_s", "cv")
        return {**{k: math.nan for k in keys}, "n_samples": 0}
    q25, med, q75 = np.percentile(x, [25, 50, 75])
    mean = float(x.mean())
    return {
        "pooled_median_s": float(med),
        "iqr_s": float(q75 - q25),
        "min_s": float(x.min()),
        "mean_s": mean,
        "cv": float(x.std(ddof=1) / mean) if x.size > 1 and mean > 0 else 0.0,
        "n_samples": int(x.size),
    }


def spread(logs: np.ndarray, first: int | None = None) -> tuple[float, int]:
    """(sd, degrees of freedom) that an interval over these log unit medians uses: all of them, or,
    when a row got extra units after its `first` (bench/sweep/plan.py), the first ones' sd with
    first - 1 degrees of freedom. That is Stein's two-stage interval: the extra count was chosen from
    that sd, and only with it does the interval keep its coverage (a test over every unit's sd is
    liberal: the rows that stopped early are the ones whose first sd came out small)."""
    k = logs.size if first is None or first >= logs.size else max(int(first), 2)
    return float(logs[:k].std(ddof=1)), k - 1


def log_t_interval(
    medians: np.ndarray, level: float = LEVEL, first: int | None = None
) -> tuple[float, float, float]:
    """(center, low, high): geometric mean of the unit medians and its t-interval on the log
    scale (Stein's when the row has units beyond its `first`: `spread`). With one unit the interval
    is unknown (NaN)."""
    logs = np.log(np.asarray(medians, dtype=float))  # pragma: no mutate (equivalent: dtype only)
    if logs.size == 0 or not np.all(np.isfinite(logs)):
        return math.nan, math.nan, math.nan
    center = float(logs.mean())
    if logs.size < 2:
        return math.exp(center), math.nan, math.nan
    sd, df = spread(logs, first)
    half = _sps().t.ppf(0.5 + level / 2, df) * sd / math.sqrt(logs.size)
    return math.exp(center), math.exp(center - half), math.exp(center + half)


def rounds_for(medians, target: float, max_rounds: int, level: float = LEVEL) -> int:
    """How many processes a case gets in all, decided once from its first R: the fewest n <= max_rounds
    whose CI half-width (log scale) is at most target, R when the first R are already narrow enough
    or cannot say (one process, non-finite), max_rounds when no n reaches it. The half-width is the
    one the row will report: Stein's, the first R's sd with their R - 1 degrees of freedom over
    sqrt(n) (`spread`, `log_t_interval`; t(n - 1) would plan too few: at R = 5 and n = 16 its
    interval is 30% narrower than the reported one). A two-stage rule: the sample size is chosen once
    from a first sample, never by stopping the first time the interval looks narrow, which would
    bias coverage (tests/test_statistics.py validates it at the drifts the committed runs show)."""
    logs = np.log(np.asarray(medians, dtype=float))  # pragma: no mutate (equivalent: dtype only)
    r = logs.size
    if r < 2 or not np.all(np.isfinite(logs)):
        return r
    sd, t = float(logs.std(ddof=1)), float(_sps().t.ppf(0.5 + level / 2, r - 1))
    for n in range(r, max(r, max_rounds) + 1):
        if t * sd / math.sqrt(n) <= math.log1p(target):
            return n
    return max(r, max_rounds)


@dataclass(frozen=True)
class Estimate:
    """A value with its 95% confidence interval (NaN where there is none)."""

    value: float = math.nan
    lo: float = math.nan
    hi: float = math.nan

    def __iter__(self):
        return iter((self.value, self.lo, self.hi))

    def columns(self, value: str, lo: str, hi: str) -> dict[str, float]:
        """Its three numbers under a table's column names."""
        return {value: self.value, lo: self.lo, hi: self.hi}


@dataclass(frozen=True)
class Drift:
    """One run's drift between processes: the sd of its log process medians, their count, and the
    sd's degrees of freedom (n - 1 unless `spread` says otherwise: 0 means n - 1)."""

    sd: float
    n: int
    df: int = 0


def detectable_change(
    a: Drift, b: Drift, threshold: float, alpha: float = 0.05, power: float = 0.8
) -> float:
    """The smallest true slowdown |B/A - 1| that compare calls with probability `power`, at the
    runs' own drift and process counts: a change is called when p < alpha (Welch) and
    |ratio - 1| > threshold, so its log must clear both t(1 - alpha/2) se and log(1 + threshold),
    by t(power) se. NaN when either run has fewer than 2 processes."""
    if a.n < 2 or b.n < 2 or not (math.isfinite(a.sd) and math.isfinite(b.sd)):
        return math.nan
    va, vb = a.sd**2 / a.n, b.sd**2 / b.n
    se = math.sqrt(va + vb)
    if se == 0:
        return threshold
    df = two_run_df(va, vb, a.n, b.n, a.df or a.n - 1, b.df or b.n - 1)
    bar = max(_sps().t.ppf(1 - alpha / 2, df) * se, math.log1p(threshold))
    return math.expm1(bar + _sps().t.ppf(power, df) * se)


def welch_df(va: float, vb: float, df_a: int, df_b: int) -> float:
    """Welch-Satterthwaite degrees of freedom of va + vb (each a variance of a mean)."""
    return (va + vb) ** 2 / (va**2 / df_a + vb**2 / df_b)


def two_run_df(va: float, vb: float, n_a: int, n_b: int, df_a: int, df_b: int) -> float:
    """Degrees of freedom of the two-run test: Welch-Satterthwaite when each side's sd is from all
    its units; the smaller side's when either got extra units (Stein's two-stage): their counts
    grew with their first sd, so va and vb stay near the planned width whatever the true variance
    is, and the Welch-Satterthwaite df is liberal (A/A 5.6% over 3,000 simulated pairs at drift
    0.04); min(df_a, df_b) is the conservative solution of that Behrens-Fisher problem."""
    if df_a == n_a - 1 and df_b == n_b - 1:
        return welch_df(va, vb, df_a, df_b)
    return float(min(df_a, df_b))


def across_units(
    round_medians: list[float], round_iqr_rel: list[float], first: int | None = None
) -> dict[str, float]:
    """The row's center, CI and drift from its per-process medians (and within-process IQRs), the
    first `first` of them the base rounds (their sd sets the CI of a row that got extra ones)."""
    m = np.asarray(round_medians, dtype=float)  # pragma: no mutate (equivalent: dtype only)
    center, lo, hi = log_t_interval(m, first=first)
    return {
        "median_s": center,
        "ci_low_s": lo,
        "ci_high_s": hi,
        "round_sd": float(np.log(m).std(ddof=1)) if m.size > 1 else math.nan,
        "round_iqr_rel": float(np.median(round_iqr_rel)) if len(round_iqr_rel) else math.nan,
    }


def iqr_rel(samples_s: np.ndarray) -> float:
    """IQR / median of one process's samples."""
    # pragma: no mutate (equivalent)
    q25, med, q75 = np.percentile(np.asarray(samples_s, dtype=float), [25, 50, 75])
    return float((q75 - q25) / med) if med > 0 else math.nan


def noisy_reason(row: dict[str, float]) -> str:
    """'' for a row whose median is well known, else which rule it broke (the row's CI half-width
    over CI_NOISY, or a typical process spread IQR/median over IQR_NOISY)."""
    why = []
    med, lo, hi = row["median_s"], row["ci_low_s"], row["ci_high_s"]
    if math.isfinite(med) and med > 0:
        if not (math.isfinite(lo) and math.isfinite(hi)):
            why.append("one process: CI unknown")
        else:
            half = max(hi / med - 1, 1 - lo / med)
            if half > CI_NOISY:
                why.append(f"median CI +-{half:.0%} > {CI_NOISY:.0%}")
    if row.get("round_iqr_rel", math.nan) > IQR_NOISY:
        why.append(f"within-process IQR {row['round_iqr_rel']:.0%} of the median > {IQR_NOISY:.0%}")
    return "; ".join(why)


def welch_log(
    a: np.ndarray,
    b: np.ndarray,
    level: float = LEVEL,
    first_a: int | None = None,
    first_b: int | None = None,
) -> tuple[float, float, float, float]:
    """Welch's t-test of log(b) against log(a), unit medians of two runs: (ratio of geometric
    means b/a, CI low, CI high, two-sided p); each side's sd from its first `first_*` units when it
    has more (`spread`: Stein's two-stage test). NaNs when either side has fewer than 2 units."""
    la, lb = (
        np.log(np.asarray(a, float)),
        np.log(np.asarray(b, float)),
    )  # pragma: no mutate (equivalent)
    if la.size == 0 or lb.size == 0:
        return math.nan, math.nan, math.nan, math.nan
    ratio = math.exp(lb.mean() - la.mean())
    if la.size < 2 or lb.size < 2:
        return ratio, math.nan, math.nan, math.nan
    (sa, dfa), (sb, dfb) = spread(la, first_a), spread(lb, first_b)
    if sa == 0 and sb == 0:  # two constants: no variance to test against
        return ratio, ratio, ratio, (1.0 if ratio == 1.0 else 0.0)
    if dfa == la.size - 1 and dfb == lb.size - 1:  # no extra units: scipy's Welch test
        res = _sps().ttest_ind(lb, la, equal_var=False)
        ci = res.confidence_interval(level)
        return ratio, math.exp(ci.low), math.exp(ci.high), float(res.pvalue)
    va, vb = sa**2 / la.size, sb**2 / lb.size
    se, df = math.sqrt(va + vb), two_run_df(va, vb, la.size, lb.size, dfa, dfb)
    d, half = lb.mean() - la.mean(), _sps().t.ppf(0.5 + level / 2, df) * math.sqrt(va + vb)
    return ratio, math.exp(d - half), math.exp(d + half), float(2 * _sps().t.sf(abs(d) / se, df))


def slow_share(rows) -> float:
    """The share of the processes (rows: each row's per-process medians) whose median is
    SLOW_PROCESS times or more their row's fastest: what moves where a host slows whole processes,
    not single calls; NaN with no row of 2 or more processes."""
    rel = [m / m.min() for m in map(np.asarray, rows) if len(m) >= 2 and m.min() > 0]
    return float(np.mean(np.concatenate(rel) >= SLOW_PROCESS)) if rel else math.nan
