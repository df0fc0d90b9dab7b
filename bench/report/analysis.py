"""From a run's CSV files to the answer. Everything here is computed from results.csv, rounds.csv
and run.json, so `bench report` regenerates it from a committed run. Definitions (the report
states beside each number which one it uses):

- Overhead against the floor, per size: t_impl - t_floor, where t_floor is the bare C + BLAS
  implementation (the registry's floor, c.ref) of the same model at the same size on the same
  device. 95% CI from the two rows' per-process medians (delta method on their geometric means,
  Welch-Satterthwaite degrees of freedom). Without a floor row there is no overhead.
- Overhead share: (t_impl - t_floor) / t_impl; crossover: the smallest width-sweep size from
  which the share stays under 5%, with the earliest and latest such size the CIs allow.
- Fixed cost per call a (per step: a / K for fused rows, K steps per call) and effective rate r:
  robust fit of t = a + FLOPs / r over the width sweep (soft-L1 on relative residuals). a holds
  everything that does not grow with the matrix products: framework overhead, but also real
  elementwise work and memory traffic (other_flops_per_step, bytes_per_step). A second fit,
  t - bytes / bw = a' + FLOPs / r with bw the measured copy bandwidth, shows how much of a is
  memory traffic; both fits' relative RMS residuals are reported. CI: bootstrap over processes.
- Cost per op: Theil-Sen slope of (t - FLOPs / r) over the model's layer ops (ops_per_step, one
  definition per model shared by every row) on the depth sweep, with its 95% CI.
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

    floor: frozenset[str]  # the bare reference (c.ref): t_floor of the overhead
    control: frozenset[str]  # the harness's own cost (null.noop): never in fits or overheads


def roles(results: pd.DataFrame) -> Roles:
    found = [REGISTRY.get(m, {}).get(i) for m, i in set(zip(results["model"], results["impl"], strict=True))]
    found = [i for i in found if i is not None]
    pick = lambda test: frozenset(i.name for i in found if test(i))  # noqa: E731
    return Roles(pick(lambda i: i.role == "floor"), pick(lambda i: i.role == "control"))


@dataclass
class ImplSummary:
    impl: str
    steps_per_call: int = 1  # K of its width-sweep rows (fused: the fit's a is per call / K)
    fixed_us: float = math.nan  # a, µs per step
    fixed_us_lo: float = math.nan
    fixed_us_hi: float = math.nan
    fixed_minus_bytes_us: float = math.nan  # a' of the fit with memory traffic at measured bandwidth
    fit_rms: float = math.nan  # relative RMS residual of t = a + F / r
    fit_bytes_rms: float = math.nan  # ... of t - bytes / bw = a' + F / r
    rate_gflops: float = math.nan  # r
    rate_gflops_lo: float = math.nan
    rate_gflops_hi: float = math.nan
    us_per_op: float = math.nan  # depth-sweep slope over the model's layer ops
    us_per_op_lo: float = math.nan
    us_per_op_hi: float = math.nan
    overhead_small_us: float = math.nan  # t - t_floor at the smallest width-sweep size
    overhead_small_lo: float = math.nan
    overhead_small_hi: float = math.nan
    overhead_large_us: float = math.nan  # ... at the largest
    overhead_large_lo: float = math.nan
    overhead_large_hi: float = math.nan
    crossover: str = ""  # size label, or "" if the share never stays under the threshold
    crossover_flops: float = math.nan
    crossover_earliest: str = ""
    crossover_latest: str = ""
    smallest_size: str = ""
    largest_size: str = ""
    pct_peak_largest: float = math.nan
    first_call_s_max: float = math.nan


def fit_fixed_cost(flops: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """Robust fit of t = a + flops * c; returns (a seconds, c seconds per FLOP), both >= 0."""
    flops, t = np.asarray(flops, float), np.asarray(t, float)
    ta, tc = max(t.min(), 1e-12), t.max() / flops.max()  # scales so both unknowns are O(1)

    def resid(p):
        return (p[0] * ta + p[1] * tc * flops - t) / t

    sol = optimize.least_squares(resid, x0=[0.5, 0.5], bounds=([0, 0], [np.inf, np.inf]), loss="soft_l1", f_scale=0.05)
    return float(sol.x[0] * ta), float(sol.x[1] * tc)


def rel_rms(flops: np.ndarray, t: np.ndarray, a: float, c: float) -> float:
    return float(np.sqrt(np.mean(((a + c * flops - t) / t) ** 2)))


def boot_centers(medians: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap of a row's center: resample its per-process medians, geometric mean of each draw."""
    logs = np.log(np.asarray(medians, float))  # pragma: no mutate (equivalent: dtype only)
    return np.exp(logs[rng.integers(logs.size, size=(n_boot, logs.size))].mean(axis=1))


def load(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(results, rounds, meta) of a run, every file checked (SchemaError names the problem)."""
    results, rounds, _, meta = read_run(run_dir)
    return results, rounds, meta


def unit_medians(rounds: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """(impl, size) -> the per-process medians (seconds per step): the unit of replication."""
    return {k: g["median_s"].to_numpy(float) for k, g in rounds.groupby(["impl", "size"], sort=False)}


def diff_ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(center, low, high) of geomean(a) - geomean(b) from two sets of process medians."""
    parts = []
    for m in (np.asarray(a, float), np.asarray(b, float)):  # pragma: no mutate (equivalent: dtype only)
        logs = np.log(m)
        g = float(np.exp(logs.mean()))
        var = (g * logs.std(ddof=1)) ** 2 / m.size if m.size > 1 else math.nan  # delta method
        parts.append((g, var, m.size - 1))
    (ga, va, da), (gb, vb, db) = parts
    d = ga - gb
    se2 = va + vb
    if not (math.isfinite(se2) and se2 > 0):
        return d, (d if se2 == 0 else math.nan), (d if se2 == 0 else math.nan)
    dof = se2**2 / (va**2 / da + vb**2 / db)
    half = float(sps.t.ppf(0.975, dof)) * math.sqrt(se2)
    return d, d - half, d + half


def width_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The width sweep (and custom sizes), smallest step first."""
    return df[df["sweep"].isin(["width", "custom"])].sort_values("flops_per_step")


def best_peak_gflops(meta: dict, device: str = "cpu") -> float:
    vals = [p["gflops"] for p in meta.get("peaks", {}).values() if "gflops" in p and p.get("device", "cpu") == device]
    return max(vals) if vals else math.nan


def copy_bandwidth(meta: dict, device: str = "cpu") -> float:
    """The measured copy bandwidth of the device, GB/s (read + write), NaN when not measured."""
    vals = [p["copy_gbytes_per_s"] for p in meta.get("peaks", {}).values()
            if "copy_gbytes_per_s" in p and p.get("device", "cpu") == device]
    return max(vals) if vals else math.nan


def shares(results: pd.DataFrame, rounds: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per ok row: t_floor (the C floor, same model, size and device), the overhead t - t_floor
    with its CI (from the process medians in rounds), the share, the slowdown against the fastest."""
    r = roles(results)
    ok = results[(results["status"] == "ok") & ~results["impl"].isin(r.control)].copy()
    units = unit_medians(rounds) if rounds is not None else {}
    floor = ok[ok["impl"].isin(r.floor)].set_index(["model", "device", "size"])
    key = pd.MultiIndex.from_frame(ok[["model", "device", "size"]])
    ok["floor_impl"] = floor["impl"].reindex(key).to_numpy() if not floor.empty else None
    ok["t_floor"] = floor["median_s"].reindex(key).to_numpy() if not floor.empty else math.nan
    ok["overhead_s"] = ok["median_s"] - ok["t_floor"]
    lo, hi = [], []
    for row in ok.itertuples():
        a, b = units.get((row.impl, row.size)), units.get((row.floor_impl, row.size))
        _, l_, h_ = diff_ci(a, b) if a is not None and b is not None and isinstance(row.floor_impl, str) \
            else (math.nan, math.nan, math.nan)
        lo.append(l_)
        hi.append(h_)
    ok["overhead_lo_s"], ok["overhead_hi_s"] = lo, hi
    ok["share"] = ok["overhead_s"] / ok["median_s"]
    ok["share_lo"] = ok["overhead_lo_s"] / ok["median_s"]
    ok["share_hi"] = ok["overhead_hi_s"] / ok["median_s"]
    fastest = ok.groupby(["model", "device", "size"])["median_s"].transform("min")
    ok["slowdown"] = ok["median_s"] / fastest
    first = ok.sort_values("median_s").groupby(["model", "device", "size"])["impl"].first()
    ok["fastest_impl"] = first.reindex(key).to_numpy() if not ok.empty else []
    return ok


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


def fit_summary(s: ImplSummary, width: pd.DataFrame, units: dict, meta: dict, rng: np.random.Generator) -> None:
    """The two fits of the width sweep, with a bootstrap CI over processes for the first."""
    F, t = width["flops_per_step"].to_numpy(float), width["median_s"].to_numpy(float)
    a, c = fit_fixed_cost(F, t)
    s.fixed_us, s.fit_rms = a * 1e6, rel_rms(F, t, a, c)
    boots = [boot_centers(units[(s.impl, z)], N_BOOT, rng) for z in width["size"]]
    fits = np.array([fit_fixed_cost(F, np.array([bt[b] for bt in boots])) for b in range(N_BOOT)])
    s.fixed_us_lo, s.fixed_us_hi = np.percentile(fits[:, 0], [2.5, 97.5]) * 1e6
    s.rate_gflops = 1 / c / 1e9 if c > 0 else math.inf
    c_lo, c_hi = np.percentile(fits[:, 1], [2.5, 97.5])
    s.rate_gflops_lo = 1 / c_hi / 1e9 if c_hi > 0 else math.inf
    s.rate_gflops_hi = 1 / c_lo / 1e9 if c_lo > 0 else math.inf
    bw = copy_bandwidth(meta, width["device"].iloc[0])
    if math.isfinite(bw):
        t2 = t - width["bytes_per_step"].to_numpy(float) / (bw * 1e9)
        if (t2 > 0).all():
            a2, c2 = fit_fixed_cost(F, t2)
            s.fixed_minus_bytes_us, s.fit_bytes_rms = a2 * 1e6, rel_rms(F, t2, a2, c2)


def overhead_summary(s: ImplSummary, width: pd.DataFrame) -> None:
    small, large = width.iloc[0], width.iloc[-1]
    s.smallest_size, s.largest_size, s.pct_peak_largest = small["size"], large["size"], float(large["pct_peak"])
    if isinstance(small.get("floor_impl"), str) and small["floor_impl"] != s.impl:
        s.overhead_small_us, s.overhead_small_lo, s.overhead_small_hi = (
            small["overhead_s"] * 1e6, small["overhead_lo_s"] * 1e6, small["overhead_hi_s"] * 1e6)
    if isinstance(large.get("floor_impl"), str) and large["floor_impl"] != s.impl:
        s.overhead_large_us, s.overhead_large_lo, s.overhead_large_hi = (
            large["overhead_s"] * 1e6, large["overhead_lo_s"] * 1e6, large["overhead_hi_s"] * 1e6)
    if width["t_floor"].notna().all() and not (width["floor_impl"] == s.impl).all():
        s.crossover, s.crossover_flops, s.crossover_earliest, s.crossover_latest = crossover(width)


def summarize(results: pd.DataFrame, rounds: pd.DataFrame, meta: dict, seed: int = 0) -> list[ImplSummary]:
    rng = np.random.default_rng(seed)
    units = unit_medians(rounds)
    sh = shares(results, rounds)
    out = []
    for impl in dict.fromkeys(results["impl"]):
        if impl in roles(results).control:
            continue
        s = ImplSummary(impl)
        rows = sh[sh["impl"] == impl]
        width = width_rows(rows)
        if len(width) >= 3:
            s.steps_per_call = int(width["steps_per_call"].max())
            fit_summary(s, width, units, meta, rng)
        if len(width):
            overhead_summary(s, width)
        depth = depth_points(rows)
        if len(depth) >= 3 and depth["ops_per_step"].nunique() >= 3:
            # Extra layers also add FLOPs: take their compute (at the fitted rate) out first.
            compute = depth["flops_per_step"] / (s.rate_gflops * 1e9) if math.isfinite(s.rate_gflops) else 0.0
            slope, _, lo, hi = sps.theilslopes(depth["median_s"] - compute, depth["ops_per_step"], alpha=0.95)
            s.us_per_op, s.us_per_op_lo, s.us_per_op_hi = slope * 1e6, lo * 1e6, hi * 1e6
        s.first_call_s_max = float(results.loc[results["impl"] == impl, "first_call_s"].max())
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
