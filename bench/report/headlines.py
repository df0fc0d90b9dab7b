"""The report's headlines: one sentence per finding, generated from a run's numbers, each with the
definition it uses beside it (bench/analysis.py states them in full)."""

from __future__ import annotations

import math

import pandas as pd

from bench.report import analysis
from bench.runmeta import RunMeta
from bench.tables import fmt_us

DEFINITIONS = {
    "overhead": "t_impl - t_floor, the floor being the bare C + BLAS implementation (c.ref) of "
    "the same model, "
    "size and device; 95% CI from both rows' per-process medians, paired by round",
    "fixed": "intercept a of t = a + FLOPs / r over the width sweep, per step; it holds all work "
    "that does not "
    "grow with the matrix products (elementwise layers, memory traffic), not only framework "
    "overhead; "
    "fused rows run K steps per call and show a / K",
    "per_op": "slope of step time over the model's layer ops (ops_per_step, one definition shared "
    "by every row) "
    "on the depth sweep, compute at the fitted rate taken out",
    "crossover": f"(t_impl - t_floor) / t_impl stays under {analysis.SHARE_THRESHOLD:.0%} from "
    "this width-sweep "
    "size on; the range is what the overhead CIs allow",
    "slowdown": "median step time over the fastest row's at the same size",
    "peak": "matrix-product FLOPs per second over the same framework's measured 2048^3 float32 "
    "matmul",
    "control": "null.noop, a step that does nothing, timed through the whole path; median over "
    "sizes",
    "precision": "round_sd: sd of the log per-process medians of a row; noisy: 95% CI of the "
    "median wider than "
    "+-5% or within-process IQR over 25%; detectable: the smallest change `bench compare` calls "
    "with "
    "80% power against a run like this one (same drift and processes; "
    "bench/stats.detectable_change); "
    f"slow processes: processes whose median is {analysis.SLOW_PROCESS:g}x or more their row's "
    "fastest, "
    "where a host that slows whole processes shows",
}


def us(x: float) -> str:
    """Microseconds with sensible digits (the same format as the terminal summary)."""
    return "n/a" if x is None or not math.isfinite(x) else fmt_us(x / 1e6)


def line(title: str, key: str, body: str) -> str:
    return f"**{title}** ({DEFINITIONS[key]}): {body}"


def overhead(summaries: tuple[analysis.ImplSummary, ...]) -> list[str]:
    out = []
    for which in ("small", "large"):
        rows = [s for s in summaries if math.isfinite(s.ends.overhead(which).value)]
        if not rows:
            continue
        size = rows[0].ends.size(which)
        parts = []
        for s in rows:
            center, lo, hi = s.ends.overhead(which)
            parts.append(f"{s.impl} {us(center)} µs [{us(lo)}, {us(hi)}]")
        label = "smallest" if which == "small" else "largest"
        out.append(
            line(
                f"Overhead per step against the C floor at the {label} size, {size}",
                "overhead",
                "; ".join(parts) + ".",
            )
        )
    return out


def fixed_and_per_op(summaries: tuple[analysis.ImplSummary, ...]) -> list[str]:
    out = []
    fixed = [s for s in summaries if math.isfinite(s.fit.fixed.value)]
    if fixed:
        parts = [
            f"{s.impl} {us(s.fit.fixed.value)} µs [{us(s.fit.fixed.lo)}, {us(s.fit.fixed.hi)}]"
            + (f" (K = {s.fit.steps_per_call})" if s.fit.steps_per_call > 1 else "")
            for s in fixed
        ]
        out.append(line("Fixed cost per call, per step", "fixed", "; ".join(parts) + "."))
    per_op = [s for s in summaries if math.isfinite(s.per_op.value)]
    if per_op:
        parts = [
            f"{s.impl} {s.per_op.value:.2f} µs [{s.per_op.lo:.2f}, {s.per_op.hi:.2f}]"
            for s in per_op
        ]
        out.append(line("Cost per layer op", "per_op", "; ".join(parts) + "."))
    return out


def crossovers(summaries: tuple[analysis.ImplSummary, ...], roles: analysis.Roles) -> list[str]:
    parts = []
    for s in summaries:
        e = s.ends
        if s.impl in roles.floor or not math.isfinite(e.overhead_large.value):
            continue
        if e.crossover:
            span = (
                f"CI from {e.crossover_earliest} to {e.crossover_latest or 'beyond the sweep'}"
                if e.crossover_earliest != e.crossover_latest
                else "CI: same size"
            )
            parts.append(f"{s.impl} from {e.crossover} ({e.crossover_flops:.2g} FLOP/step; {span})")
        else:
            parts.append(f"{s.impl} not within the sweep")
    return (
        [
            line(
                f"Overhead share under {analysis.SHARE_THRESHOLD:.0%}",
                "crossover",
                "; ".join(parts) + ".",
            )
        ]
        if parts
        else []
    )


def below_floor(sh: pd.DataFrame, meta: dict) -> list[str]:
    """Rows faster than the floor beyond both CIs, with the measured cause: the time the step's
    matrix products take at each framework's measured matmul peak (run.json peaks) says how much of
    the gap a faster matmul kernel explains; the rest is the rest of the step (fused elementwise
    work, fewer passes over memory, a lower fixed cost)."""
    w = analysis.width_rows(sh)
    w = w[(w["overhead_hi_s"] < 0) & (w["floor_impl"] != w["impl"])]
    if w.empty:
        return []
    peaks = {fw: p["gflops"] * 1e9 for fw, p in meta.peaks.items() if "gflops" in p}
    parts = []
    for _, r in w.iterrows():
        floor_fw = r["floor_impl"].partition(".")[0]
        if r["framework"] in peaks and floor_fw in peaks:
            # s saved by the kernel
            kernel = r["flops_per_step"] * (1 / peaks[floor_fw] - 1 / peaks[r["framework"]])
            share = kernel / -r["overhead_s"]
            cause = (
                f"its matmul kernel ({peaks[r['framework']] / 1e9:.0f} vs "
                f"{peaks[floor_fw] / 1e9:.0f} GFLOP/s "
                f"measured peaks) explains {share:.0%} of it"
                + (
                    ""
                    if share >= 0.5
                    else "; the rest of the step (fusion, memory passes, fixed cost) explains the "
                    "rest"
                )
            )
        else:
            cause = "no peaks to separate the matmul kernel from the rest of the step"
        parts.append(f"{r['impl']} at {r['size']} by {us(-r['overhead_s'] * 1e6)} µs: {cause}")
    return [line("Faster than the floor beyond both CIs", "overhead", "; ".join(parts) + ".")]


def extremes(sh: pd.DataFrame) -> list[str]:
    w = analysis.width_rows(sh)
    if w.empty:
        return []
    worst = w.loc[w["slowdown"].idxmax()]
    fastest_t = w.loc[w["size"] == worst["size"], "median_s"].min()
    out = [
        line(
            "Largest slowdown",
            "slowdown",
            f"{worst['impl']} takes {us(worst['median_s'] * 1e6)} µs per step at {worst['size']}, "
            f"{worst['slowdown']:.0f}x the fastest there ({worst['fastest_impl']}, "
            f"{us(fastest_t * 1e6)} µs).",
        )
    ]
    big = w[w["flops_per_step"] == w["flops_per_step"].max()]
    parts = [
        f"{r['impl']} {r['pct_peak']:.0f}%"
        + (
            f" (machine: {r['pct_machine_peak']:.0f}%)"
            if math.isfinite(r["pct_machine_peak"])
            else ""
        )
        for _, r in big.iterrows()
        if math.isfinite(r["pct_peak"])
    ]
    if parts:
        machine = (
            " In parentheses: % of the machine peak, the fastest framework's matmul on this "
            "machine."
            if big["pct_machine_peak"].notna().any()
            else ""
        )
        out.append(
            line(
                f"Percent of peak at the largest size, {big['size'].iloc[0]} "
                f"({big['flops_per_step'].iloc[0] / 1e9:.1f} GFLOP/step)",
                "peak",
                ", ".join(parts) + "." + machine,
            )
        )
    return out


def precision(res: pd.DataFrame, roles, slow: float = math.nan) -> list[str]:
    """How precise the run is, from its own rows: drift, noisy rows, processes, detectable change,
    and the share of slow processes (bench/results.slow_process_share)."""
    from bench.report.compare import THRESHOLD
    from bench.stats import Drift, detectable_change

    ok = res[(res["status"] == "ok") & ~res["impl"].isin(roles.control) & (res["rounds"] >= 2)]
    if ok.empty:
        return []
    sizes = ", ".join(
        f"{z} {g['round_sd'].median():.3f}" for z, g in ok.groupby("size", sort=False)
    )
    det = [
        detectable_change(
            Drift(r.round_sd, int(r.rounds)), Drift(r.round_sd, int(r.rounds)), THRESHOLD
        )
        for r in ok.itertuples()
    ]
    lo, hi = int(ok["rounds"].min()), int(ok["rounds"].max())
    return [
        line(
            "Precision",
            "precision",
            f"median round_sd {ok['round_sd'].median():.3f} (per size: {sizes}); "
            f"{int(ok['noisy'].astype(bool).sum())} of {len(ok)} rows noisy; "
            f"{lo if lo == hi else f'{lo} to {hi}'} processes per row; "
            f"detectable change median ±{pd.Series(det).median():.1%} (largest ±{max(det):.1%})"
            + (
                f"; {slow:.0%} of the processes {analysis.SLOW_PROCESS:g}x or more their row's "
                "fastest"
                if math.isfinite(slow)
                else ""
            )
            + ".",
        )
    ]


def runtime(meta: RunMeta) -> list[str]:
    import datetime as dt

    try:
        start, end = (
            dt.datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ")
            for t in (meta.created_utc, meta.finished_utc)
        )
    except (KeyError, TypeError, ValueError):
        return []
    s = meta.settings
    rounds, extra = s.get("rounds"), meta.extra_rounds or {}
    more = (
        f" (+ extra rounds for {len(extra)} rows with wide CIs, up to {max(extra.values())} in all)"
        if extra
        else ""
    )
    threads = (
        f", {s['threads']} thread(s) per "
        f"worker{' beside a harness core' if s.get('harness_cpu') else ''}"
        if "harness_cpu" in s
        else ""
    )
    return [
        f"**Run time**: {(end - start).total_seconds() / 60:.1f} minutes for "
        f"{len(s.get('sizes', []))} "
        f"sizes x {len(s.get('impls', []))} implementations x {rounds} rounds{more}{threads} "
        "(run.json created_utc to finished_utc)."
    ]


def headlines(a: analysis.Analysis) -> list[str]:
    """Sentences generated from the numbers, each with its definition."""
    res, sh, summaries, meta, roles = a.results, a.shares, a.summaries, a.meta, a.roles
    out = overhead(summaries)
    if not out and not sh.empty:
        out.append(
            "**Overhead against the C floor**: not computed, no floor row (c.ref) in this run."
        )
    out += (
        below_floor(sh, meta)
        + fixed_and_per_op(summaries)
        + crossovers(summaries, roles)
        + extremes(sh)
    )
    null = res[res["impl"].isin(roles.control) & (res["status"] == "ok")]
    if not null.empty:
        out.append(
            line(
                "Harness cost per timed call",
                "control",
                f"{null['median_s'].median() * 1e9:.0f} ns.",
            )
        )
    bad = res[res["status"] != "ok"]
    if not bad.empty:
        out.append(
            f"{len(bad)} case(s) not ok: "
            + ", ".join(f"{r['impl']} {r['size']} ({r['status']})" for _, r in bad.iterrows())
            + "."
        )
    return out + precision(res, roles, a.slow_processes) + runtime(meta)
