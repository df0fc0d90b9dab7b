"""The statistics behind the analysis, each a pure function of arrays: the robust fit of
t = a + F / r, its relative residual, a bootstrap of a row's center over processes, and the CI of a
difference of two rows' geometric means (unpaired, or paired by round)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as sps

from bench.stats import spread, two_run_df


def fit_fixed_cost(
    flops: np.ndarray, t: np.ndarray, start: tuple[float, float] | None = None
) -> tuple[float, float]:
    """Robust fit of t = a + flops * c; returns (a seconds, c seconds per FLOP), both >= 0. The
    fit is convex; start (a, c), a nearby solution such as the point fit's for a bootstrap draw,
    only shortens the search."""
    flops, t = np.asarray(flops, float), np.asarray(t, float)
    ta, tc = max(t.min(), 1e-12), t.max() / flops.max()  # scales so both unknowns are O(1)
    x0 = [0.5, 0.5] if start is None else [max(start[0] / ta, 1e-6), max(start[1] / tc, 1e-6)]

    def resid(p):
        return (p[0] * ta + p[1] * tc * flops - t) / t

    sol = optimize.least_squares(
        resid, x0=x0, bounds=([0, 0], [np.inf, np.inf]), loss="soft_l1", f_scale=0.05
    )
    return float(sol.x[0] * ta), float(sol.x[1] * tc)


def rel_rms(flops: np.ndarray, t: np.ndarray, a: float, c: float) -> float:
    return float(np.sqrt(np.mean(((a + c * flops - t) / t) ** 2)))


def boot_centers(medians: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap of a row's center: resample its per-process medians, geometric mean of each draw."""
    logs = np.log(np.asarray(medians, float))  # pragma: no mutate (equivalent: dtype only)
    return np.exp(logs[rng.integers(logs.size, size=(n_boot, logs.size))].mean(axis=1))


def diff_ci(a: np.ndarray, b: np.ndarray, first: int | None = None) -> tuple[float, float, float]:
    """(center, low, high) of geomean(a) - geomean(b) from two sets of process medians (each one's
    sd from its first `first` when it has more: bench/stats.spread)."""
    parts = []
    for m in (
        np.asarray(a, float),
        np.asarray(b, float),
    ):  # pragma: no mutate (equivalent: dtype only)
        logs = np.log(m)
        g = float(np.exp(logs.mean()))
        sd, df = spread(logs, first) if m.size > 1 else (math.nan, 0)
        var = (g * sd) ** 2 / m.size if m.size > 1 else math.nan  # delta method
        parts.append((g, var, df, m.size))
    (ga, va, da, na), (gb, vb, db, nb) = parts
    d = ga - gb
    se2 = va + vb
    if not (math.isfinite(se2) and se2 > 0):
        return d, (d if se2 == 0 else math.nan), (d if se2 == 0 else math.nan)
    dof = two_run_df(va, vb, na, nb, da, db)  # Welch's, or the smaller side's after extra rounds
    half = float(sps.t.ppf(0.975, dof)) * math.sqrt(se2)
    return d, d - half, d + half


PAIRED_MIN = 3  # common base rounds a paired interval needs (fewer: the unpaired one)


def paired_diff_ci(
    a: pd.Series, b: pd.Series, first: int | None = None
) -> tuple[float, float, float]:
    """(center, low, high) of geomean(a) - geomean(b), two rows' process medians indexed by round.
    The rows' processes of one round ran in the same stretch of time (in turns, under --chunks), so a
    slow host slows both: the delta method keeps their covariance,
        var = A^2 s_a^2 / n_a + B^2 s_b^2 / n_b - 2 A B s_ab n_ab / (n_a n_b),
    A and B the geometric means over all of each row's rounds, n_ab the rounds they share, and s_a,
    s_b, s_ab from the rounds they share among the base rounds (round < `first`, Stein's first stage
    as in bench/stats.spread), with k - 1 degrees of freedom over those k. With equal rounds this is
    the paired t-interval of A log a_r - B log b_r. Fewer than PAIRED_MIN shared base rounds: diff_ci."""
    a, b = a.sort_index(), b.sort_index()
    shared = a.index.intersection(b.index)
    base = shared if first is None else shared[shared < first]
    if len(base) < PAIRED_MIN:
        return diff_ci(a.to_numpy(float), b.to_numpy(float), first)
    la, lb = np.log(a.to_numpy(float)), np.log(b.to_numpy(float))
    ga, gb = float(np.exp(la.mean())), float(np.exp(lb.mean()))
    c = np.cov(np.log(a[base].to_numpy(float)), np.log(b[base].to_numpy(float)), ddof=1)
    na, nb = la.size, lb.size
    var = (
        ga**2 * c[0, 0] / na
        + gb**2 * c[1, 1] / nb
        - 2 * ga * gb * c[0, 1] * len(shared) / (na * nb)
    )
    d = ga - gb
    if not (
        math.isfinite(var) and var > 0
    ):  # 0 (or a rounding below it): no spread in the difference
        return d, (d if var <= 0 else math.nan), (d if var <= 0 else math.nan)
    half = float(sps.t.ppf(0.975, len(base) - 1)) * math.sqrt(var)
    return d, d - half, d + half
