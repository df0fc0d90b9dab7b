"""From a run's CSV files to the answer: fixed cost per step, cost per op, overhead share, crossover.

Everything here is computed from results.csv, rounds.csv and run.json, so `bench report`
regenerates it from a committed run.

- Fixed cost a and effective rate r: robust fit of median step time t = a + FLOPs / r over the
  width sweep, on relative residuals (sizes span five decades), soft-L1 loss. CI of a and r:
  bootstrap over worker processes (resample each size's per-process medians, refit), 2.5/97.5
  percentiles.
- Cost per op: Theil-Sen slope of (step time - FLOPs / r) over ops_per_step on the depth sweep,
  with its 95% CI.
- Overhead share of a row: (t - t_floor) / t, t_floor the registry's floor (the C + BLAS loop,
  c.ref) at that size, or the fastest fused implementation (jax.scan) where it has no ok row;
  and (t - FLOPs / best measured peak) / t. Bounds from the CIs of the medians.
- Crossover: the smallest width-sweep size from which the share stays under 5%; earliest and latest
  such size within the CI bounds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as sps

from bench.results import read_run
from models.registry import REGISTRY

SHARE_THRESHOLD = 0.05
N_BOOT = 300


@dataclass(frozen=True)
class Roles:
    """What the registry says of the implementations in a run (unknown names: no role)."""

    floor: frozenset[str]  # the bare reference (c.ref): t_floor wherever it has an ok row
    fused: frozenset[str]  # without it, t_floor is the fastest of these (jax.scan, ...)
    control: frozenset[str]  # the harness's own cost (null.noop): never in fits or shares


def roles(results: pd.DataFrame) -> Roles:
    found = [REGISTRY.get(m, {}).get(i) for m, i in set(zip(results["model"], results["impl"], strict=True))]
    found = [i for i in found if i is not None]
    pick = lambda test: frozenset(i.name for i in found if test(i))  # noqa: E731
    return Roles(pick(lambda i: i.role == "floor"), pick(lambda i: i.fused and i.role != "control"),
                 pick(lambda i: i.role == "control"))


@dataclass
class ImplSummary:
    impl: str
    fixed_us: float = math.nan  # a, µs per step
    fixed_us_lo: float = math.nan
    fixed_us_hi: float = math.nan
    rate_gflops: float = math.nan  # r
    rate_gflops_lo: float = math.nan
    rate_gflops_hi: float = math.nan
    us_per_op: float = math.nan  # depth-sweep slope
    us_per_op_lo: float = math.nan
    us_per_op_hi: float = math.nan
    crossover: str = ""  # size label, or "" if never under the threshold
    crossover_flops: float = math.nan
    crossover_earliest: str = ""
    crossover_latest: str = ""
    largest_size: str = ""
    pct_peak_largest: float = math.nan
    first_call_s_max: float = math.nan


def fit_fixed_cost(flops: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """Robust fit of t = a + flops * c; returns (a seconds, c seconds per FLOP), both >= 0."""
    flops, t = np.asarray(flops, float), np.asarray(t, float)
    ta, tc = t.min(), t.max() / flops.max()  # scales so both unknowns are O(1)

    def resid(p):
        return (p[0] * ta + p[1] * tc * flops - t) / t

    sol = optimize.least_squares(resid, x0=[0.5, 0.5], bounds=([0, 0], [np.inf, np.inf]), loss="soft_l1", f_scale=0.05)
    return float(sol.x[0] * ta), float(sol.x[1] * tc)


def boot_centers(medians: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap of a row's center: resample its per-process medians, geometric mean of each draw."""
    logs = np.log(np.asarray(medians, float))
    return np.exp(logs[rng.integers(logs.size, size=(n_boot, logs.size))].mean(axis=1))


def load(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(results, rounds, meta) of a run, every file checked (SchemaError names the problem)."""
    results, rounds, _, meta = read_run(run_dir)
    return results, rounds, meta


def unit_medians(rounds: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """(impl, size) -> the per-process medians (seconds per step): the unit of replication."""
    return {k: g["median_s"].to_numpy(float) for k, g in rounds.groupby(["impl", "size"], sort=False)}


def shares(results: pd.DataFrame, meta: dict) -> pd.DataFrame:
    """Per ok row: t_floor, overhead share vs the floor and vs the peak, bounds, slowdown."""
    r = roles(results)
    ok = results[(results["status"] == "ok") & ~results["impl"].isin(r.control)].copy()
    # Per device: a share never compares a GPU row with a CPU floor (or the other way round).
    key = pd.Series(list(zip(ok["device"], ok["size"], strict=True)), index=ok.index)
    floors = ok[ok["impl"].isin(r.floor | r.fused)].assign(pref=lambda d: ~d["impl"].isin(r.floor))
    fl = floors.sort_values(["pref", "median_s"]).groupby(["device", "size"]).first()
    fl.index = fl.index.to_flat_index()
    ok["floor_impl"] = key.map(fl["impl"])
    ok["t_floor"] = key.map(fl["median_s"])
    f_lo, f_hi = key.map(fl["ci_low_s"]), key.map(fl["ci_high_s"])
    ok["share"] = (ok["median_s"] - ok["t_floor"]) / ok["median_s"]
    ok["share_lo"] = (ok["ci_low_s"] - f_hi) / ok["ci_low_s"]
    ok["share_hi"] = (ok["ci_high_s"] - f_lo) / ok["ci_high_s"]
    best = best_peak_gflops(meta)
    ok["t_peak"] = ok["flops_per_step"] / (best * 1e9) if best else math.nan
    ok["share_vs_peak"] = (ok["median_s"] - ok["t_peak"]) / ok["median_s"]
    fastest = ok.groupby(["device", "size"])["median_s"].transform("min")
    ok["slowdown"] = ok["median_s"] / fastest
    first = ok.sort_values("median_s").groupby(["device", "size"])["impl"].first()
    first.index = first.index.to_flat_index()
    ok["fastest_impl"] = key.map(first)
    return ok


def width_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The width sweep (and custom sizes), smallest step first."""
    return df[df["sweep"].isin(["width", "custom"])].sort_values("flops_per_step")


def best_peak_gflops(meta: dict) -> float:
    vals = [p["gflops"] for p in meta.get("peaks", {}).values() if "gflops" in p]
    return max(vals) if vals else math.nan


def crossover(rows: pd.DataFrame) -> tuple[str, float, str, str]:
    """Smallest size from which share stays < threshold: (label, flops, earliest, latest)."""
    rows = rows.sort_values("flops_per_step")

    def first_from(col: str) -> int | None:
        under = (rows[col] < SHARE_THRESHOLD).to_numpy()
        for i in range(len(under)):
            if under[i:].all():
                return i
        return None

    i, lo, hi = first_from("share"), first_from("share_lo"), first_from("share_hi")
    label = lambda j: rows["size"].iloc[j] if j is not None else ""  # noqa: E731
    return label(i), (float(rows["flops_per_step"].iloc[i]) if i is not None else math.nan), label(lo), label(hi)


def summarize(results: pd.DataFrame, rounds: pd.DataFrame, meta: dict, seed: int = 0) -> list[ImplSummary]:
    rng = np.random.default_rng(seed)
    units = unit_medians(rounds)
    sh = shares(results, meta)
    r = roles(results)
    out = []
    for impl in dict.fromkeys(results["impl"]):
        if impl in r.control:
            continue
        s = ImplSummary(impl)
        rows = sh[sh["impl"] == impl]
        width = width_rows(rows)
        if len(width) >= 3:
            F, t = width["flops_per_step"].to_numpy(float), width["median_s"].to_numpy(float)
            a, c = fit_fixed_cost(F, t)
            boots = [boot_centers(units[(impl, z)], N_BOOT, rng) for z in width["size"]]
            fits = np.array([fit_fixed_cost(F, np.array([bt[b] for bt in boots])) for b in range(N_BOOT)])
            s.fixed_us = a * 1e6
            s.fixed_us_lo, s.fixed_us_hi = np.percentile(fits[:, 0], [2.5, 97.5]) * 1e6
            s.rate_gflops = 1 / c / 1e9 if c > 0 else math.inf
            c_lo, c_hi = np.percentile(fits[:, 1], [2.5, 97.5])
            s.rate_gflops_lo = 1 / c_hi / 1e9 if c_hi > 0 else math.inf
            s.rate_gflops_hi = 1 / c_lo / 1e9 if c_lo > 0 else math.inf
            if impl not in r.floor and width["t_floor"].notna().all() and not (width["floor_impl"] == impl).all():
                s.crossover, s.crossover_flops, s.crossover_earliest, s.crossover_latest = crossover(width)
            largest = width.iloc[-1]
            s.largest_size, s.pct_peak_largest = largest["size"], float(largest["pct_peak"])
        depth = depth_points(rows)
        if len(depth) >= 3 and depth["ops_per_step"].nunique() >= 3:
            # Extra layers also add FLOPs: take their compute (at the fitted rate) out first.
            compute = depth["flops_per_step"] / (s.rate_gflops * 1e9) if math.isfinite(s.rate_gflops) else 0.0
            slope, _, lo, hi = sps.theilslopes(depth["median_s"] - compute, depth["ops_per_step"], alpha=0.95)
            s.us_per_op, s.us_per_op_lo, s.us_per_op_hi = slope * 1e6, lo * 1e6, hi * 1e6
        allrows = results[results["impl"] == impl]
        s.first_call_s_max = float(allrows["first_call_s"].max())
        out.append(s)
    return out


def depth_points(rows: pd.DataFrame) -> pd.DataFrame:
    """The depth sweep, plus any other row at the same batch and width (e.g. L=2 of the width sweep)."""
    d = rows[rows["sweep"] == "depth"]
    if d.empty:
        return d
    key = set(zip(d["batch"], d["width"], strict=True))
    same = rows[[(b, w) in key for b, w in zip(rows["batch"], rows["width"], strict=True)]]
    return same.drop_duplicates("size").sort_values("ops_per_step")


def summary_frame(summaries: list[ImplSummary]) -> pd.DataFrame:
    return pd.DataFrame([asdict(s) for s in summaries])
