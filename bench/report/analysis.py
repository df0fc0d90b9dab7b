"""From a run's CSV files to the answer. Everything here is computed from results.csv, rounds.csv
and run.json, so `bench report` regenerates it from a committed run. Definitions (the report
states beside each number which one it uses):

- Overhead against the floor, per size: t_impl - t_floor, where t_floor is the bare C + BLAS
  implementation (the registry's floor, c.ref) of the same model at the same size on the same
  device. 95% CI from the two rows' per-process medians, paired by round (delta method on their
  geometric means with their covariance over the rounds both ran: a slow stretch of the host slows
  both rows' processes of that round; bench/report/fits.paired_diff_ci). Without a floor row there
  is no overhead.
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
from scipy import stats as sps

# noqa: F401 (re-exported)
from bench.report.fits import boot_centers, diff_ci, fit_fixed_cost, paired_diff_ci, rel_rms

# noqa: F401 (unit_medians re-exported)
from bench.results import base_rounds, read_run, slow_process_share, unit_medians, unit_series
from bench.stats import SLOW_PROCESS, Estimate  # noqa: F401 (SLOW_PROCESS: the headline names it)

SHARE_THRESHOLD = 0.05
N_BOOT = 300


@dataclass(frozen=True)
class Roles:
    """The roles a run recorded for its implementations (results.csv `role`, written when the run
    was made), so a committed run reports the same whatever the registry says later."""

    floor: frozenset[str]  # the bare reference (c.ref): t_floor of the overhead
    control: frozenset[str]  # the harness's own cost (null.noop): never in fits or overheads


def roles(results: pd.DataFrame) -> Roles:
    pick = lambda role: frozenset(results.loc[results["role"] == role, "impl"])  # noqa: E731
    return Roles(pick("floor"), pick("control"))


@dataclass(frozen=True)
class Fit:
    """The width sweep's two fits (NaN without 3 sizes)."""

    steps_per_call: int = 1  # K of its width-sweep rows (fused: the fit's a is per call / K)
    fixed: Estimate = Estimate()  # a, µs per step, with its bootstrap CI
    # a' of the fit with memory traffic at measured bandwidth
    fixed_minus_bytes_us: float = math.nan
    fit_rms: float = math.nan  # relative RMS residual of t = a + F / r
    fit_bytes_rms: float = math.nan  # ... of t - bytes / bw = a' + F / r
    rate: Estimate = Estimate()  # r, GFLOP/s

    def row(self) -> dict:
        return {
            "steps_per_call": self.steps_per_call,
            **self.fixed.columns("fixed_us", "fixed_us_lo", "fixed_us_hi"),
            "fixed_minus_bytes_us": self.fixed_minus_bytes_us,
            "fit_rms": self.fit_rms,
            "fit_bytes_rms": self.fit_bytes_rms,
            **self.rate.columns("rate_gflops", "rate_gflops_lo", "rate_gflops_hi"),
        }


@dataclass(frozen=True)
class Ends:
    """The overhead at the width sweep's ends and where its share stays under the threshold."""

    overhead_small: Estimate = Estimate()  # t - t_floor at the smallest width-sweep size, µs
    overhead_large: Estimate = Estimate()  # ... at the largest
    crossover: str = ""  # size label, or "" if the share never stays under the threshold
    crossover_flops: float = math.nan
    crossover_earliest: str = ""
    crossover_latest: str = ""
    smallest_size: str = ""
    largest_size: str = ""
    pct_peak_largest: float = math.nan

    def overhead(self, end: str) -> Estimate:
        """The overhead at the "small" or "large" end."""
        return self.overhead_small if end == "small" else self.overhead_large

    def size(self, end: str) -> str:
        return self.smallest_size if end == "small" else self.largest_size

    def row(self) -> dict:
        out = self.overhead_small.columns(
            "overhead_small_us", "overhead_small_lo", "overhead_small_hi"
        )
        out |= self.overhead_large.columns(
            "overhead_large_us", "overhead_large_lo", "overhead_large_hi"
        )
        rest = asdict(self)
        return out | {k: v for k, v in rest.items() if not k.startswith("overhead_")}


@dataclass(frozen=True)
class ImplSummary:
    impl: str
    fit: Fit = Fit()
    per_op: Estimate = Estimate()  # µs per layer op: the depth sweep's slope, with its CI
    ends: Ends = Ends()
    first_call_s_max: float = math.nan

    def row(self) -> dict:
        """Its analysis.csv row: every part's fields, flat."""
        return {
            "impl": self.impl,
            **self.fit.row(),
            **self.per_op.columns("us_per_op", "us_per_op_lo", "us_per_op_hi"),
            **self.ends.row(),
            "first_call_s_max": self.first_call_s_max,
        }


@dataclass(frozen=True)
class Analysis:
    """Everything a report shows of one run, computed once (analyze); report, plots and
    headlines only render it."""

    results: pd.DataFrame
    meta: dict
    roles: Roles
    shares: pd.DataFrame  # per ok row: the floor, the overhead and its CI, the share, the slowdown
    summaries: tuple[ImplSummary, ...]
    slow_processes: float = math.nan  # bench/results.slow_process_share

    @property
    def ok(self) -> pd.DataFrame:
        """The ok rows but the control's."""
        r = self.results
        return r[(r["status"] == "ok") & ~r["impl"].isin(self.roles.control)]

    def frame(self) -> pd.DataFrame:
        """analysis.csv."""
        return summary_frame(self.summaries)


def analyze(run_dir: Path, seed: int = 0) -> Analysis:
    """The analysis of a run directory (SchemaError names a damaged file)."""
    results, rounds, meta = load(run_dir)
    r = roles(results)
    sh = shares(results, rounds, r, base_rounds(meta))
    slow = slow_process_share(results, rounds, r.control)
    return Analysis(
        results, meta, r, sh, tuple(summarize(results, rounds, meta.peaks, seed, sh, r)), slow
    )


def load(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(results, rounds, meta) of a run, every file checked (SchemaError names the problem); the
    raw samples are not read."""
    results, rounds, _, meta = read_run(run_dir, samples=False)
    return results, rounds, meta


def width_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The width sweep (and custom sizes), smallest step first."""
    return df[df["sweep"].isin(["width", "custom"])].sort_values("flops_per_step")


def best_peak_gflops(peaks: dict, device: str = "cpu") -> float:
    """The fastest matmul any framework measured on the device (run.json's peaks), GFLOP/s."""
    vals = [
        p["gflops"] for p in peaks.values() if "gflops" in p and p.get("device", "cpu") == device
    ]
    return max(vals) if vals else math.nan


def copy_bandwidth(peaks: dict, device: str = "cpu") -> float:
    """The measured copy bandwidth of the device, GB/s (read + write), NaN when not measured."""
    vals = [
        p["copy_gbytes_per_s"]
        for p in peaks.values()
        if "copy_gbytes_per_s" in p and p.get("device", "cpu") == device
    ]
    return max(vals) if vals else math.nan


def shares(
    results: pd.DataFrame,
    rounds: pd.DataFrame | None = None,
    r: Roles | None = None,
    first: int | None = None,
    paired: bool = True,
) -> pd.DataFrame:
    """Per ok row: t_floor (the C floor, same model, size and device), the overhead t - t_floor
    with its CI (from the process medians in rounds, paired by round unless `paired` is False; the
    first `first` of each row set its sd when it has more), the share, the slowdown against the fastest."""
    r = r or roles(results)
    ok = results[(results["status"] == "ok") & ~results["impl"].isin(r.control)].copy()
    # hand-made frames may lack it
    paired = paired and rounds is not None and "round" in rounds.columns
    units = (unit_series(rounds) if paired else unit_medians(rounds)) if rounds is not None else {}
    ci = paired_diff_ci if paired else diff_ci
    floor = ok[ok["impl"].isin(r.floor)].set_index(["model", "device", "size"])
    key = pd.MultiIndex.from_frame(ok[["model", "device", "size"]])
    ok["floor_impl"] = floor["impl"].reindex(key).to_numpy() if not floor.empty else None
    ok["t_floor"] = floor["median_s"].reindex(key).to_numpy() if not floor.empty else math.nan
    ok["overhead_s"] = ok["median_s"] - ok["t_floor"]
    lo, hi = [], []
    for row in ok.itertuples():
        a, b = units.get((row.impl, row.size)), units.get((row.floor_impl, row.size))
        _, l_, h_ = (
            ci(a, b, first)
            if a is not None and b is not None and isinstance(row.floor_impl, str)
            else (math.nan, math.nan, math.nan)
        )
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
    return (
        label(i),
        (float(rows["flops_per_step"].iloc[i]) if i is not None else math.nan),
        label(lo),
        label(hi),
    )


def fit_summary(
    impl: str, width: pd.DataFrame, units: dict, peaks: dict, rng: np.random.Generator
) -> Fit:
    """The two fits of one implementation's width sweep, with a bootstrap CI over processes for
    the first."""
    F, t = width["flops_per_step"].to_numpy(float), width["median_s"].to_numpy(float)
    a, c = fit_fixed_cost(F, t)
    boots = [boot_centers(units[(impl, z)], N_BOOT, rng) for z in width["size"]]
    fits = np.array(
        [fit_fixed_cost(F, np.array([bt[b] for bt in boots]), (a, c)) for b in range(N_BOOT)]
    )
    a_lo, a_hi = np.percentile(fits[:, 0], [2.5, 97.5]) * 1e6
    c_lo, c_hi = np.percentile(fits[:, 1], [2.5, 97.5])
    rate = lambda slope: 1 / slope / 1e9 if slope > 0 else math.inf  # noqa: E731
    a2 = rms2 = math.nan
    bw = copy_bandwidth(peaks, width["device"].iloc[0])
    if math.isfinite(bw):
        t2 = t - width["bytes_per_step"].to_numpy(float) / (bw * 1e9)
        if (t2 > 0).all():
            a2, c2 = fit_fixed_cost(F, t2)
            a2, rms2 = a2 * 1e6, rel_rms(F, t2, a2, c2)
    return Fit(
        int(width["steps_per_call"].max()),
        Estimate(a * 1e6, float(a_lo), float(a_hi)),
        a2,
        rel_rms(F, t, a, c),
        rms2,
        Estimate(rate(c), rate(c_hi), rate(c_lo)),
    )


def overhead_summary(impl: str, width: pd.DataFrame) -> Ends:
    """The overhead at the smallest and largest width-sweep size, and the crossover (none for the
    floor itself, or without a floor)."""
    small, large = width.iloc[0], width.iloc[-1]

    def end(row) -> Estimate:
        if isinstance(row.get("floor_impl"), str) and row["floor_impl"] != impl:
            return Estimate(
                *(row[c] * 1e6 for c in ("overhead_s", "overhead_lo_s", "overhead_hi_s"))
            )
        return Estimate()

    cross = (
        crossover(width)
        if width["t_floor"].notna().all() and not (width["floor_impl"] == impl).all()
        else ("", math.nan, "", "")
    )
    return Ends(
        end(small), end(large), *cross, small["size"], large["size"], float(large["pct_peak"])
    )


def per_op_summary(rows: pd.DataFrame, rate_gflops: float) -> Estimate:
    """Theil-Sen slope of the depth sweep over layer ops; extra layers also add FLOPs, so their
    compute (at the fitted rate) comes out first."""
    depth = depth_points(rows)
    if len(depth) < 3 or depth["ops_per_step"].nunique() < 3:
        return Estimate()
    compute = depth["flops_per_step"] / (rate_gflops * 1e9) if math.isfinite(rate_gflops) else 0.0
    slope, _, lo, hi = sps.theilslopes(
        depth["median_s"] - compute, depth["ops_per_step"], alpha=0.95
    )
    return Estimate(slope * 1e6, lo * 1e6, hi * 1e6)


def summarize(
    results: pd.DataFrame,
    rounds: pd.DataFrame,
    peaks: dict,
    seed: int = 0,
    sh: pd.DataFrame | None = None,
    r: Roles | None = None,
) -> list[ImplSummary]:
    """One summary per implementation but the control, in the run's order."""
    rng = np.random.default_rng(seed)
    units = unit_medians(rounds)
    r = r or roles(results)
    sh = shares(results, rounds, r) if sh is None else sh
    out = []
    for impl in dict.fromkeys(results["impl"]):
        if impl in r.control:
            continue
        rows = sh[sh["impl"] == impl]
        width = width_rows(rows)
        fit = fit_summary(impl, width, units, peaks, rng) if len(width) >= 3 else Fit()
        ends = overhead_summary(impl, width) if len(width) else Ends()
        first = float(results.loc[results["impl"] == impl, "first_call_s"].max())
        out.append(ImplSummary(impl, fit, per_op_summary(rows, fit.rate.value), ends, first))
    return out


def depth_points(rows: pd.DataFrame) -> pd.DataFrame:
    """The depth sweep, plus any other row at the same batch and width (e.g. L=2 of the width sweep)."""
    d = rows[rows["sweep"] == "depth"]
    if d.empty:
        return d
    key = set(zip(d["batch"], d["width"], strict=True))
    same = rows[[(b, w) in key for b, w in zip(rows["batch"], rows["width"], strict=True)]]
    return same.drop_duplicates("size").sort_values("ops_per_step")


def summary_frame(summaries) -> pd.DataFrame:
    return pd.DataFrame([s.row() for s in summaries])
