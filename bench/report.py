"""`python -m bench report RUN_DIR`: report.md, analysis.csv and PNG plots from a run's files."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench import analysis, frameworks  # noqa: E402
from bench.results import atomic_write  # noqa: E402
from bench.tables import fmt_us, median_grid  # noqa: E402

PLOTS = {
    "step_time": "Step time vs FLOPs per step",
    "overhead_share": "Overhead share vs FLOPs per step",
    "slowdown": "Slowdown against the fastest implementation",
    "first_call": "First call (tracing, compilation) per implementation",
    "depth": "Depth sweep: step time vs framework ops per step",
}


def us(x: float) -> str:
    """Microseconds with sensible digits (the same format as the terminal summary)."""
    return "n/a" if x is None or not math.isfinite(x) else fmt_us(x)


def _style(impl: str):
    return frameworks.style(impl)  # one colour and marker per implementation, stable across plots and runs


def _width(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["sweep"].isin(["width", "custom"])].sort_values("flops_per_step")


def plot_step_time(ok: pd.DataFrame, meta: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 5.5))
    w = _width(ok)
    for impl, g in w.groupby("impl", sort=False):
        c, m = _style(impl)
        ax.plot(g["flops_per_step"], g["median_s"], marker=m, color=c, label=impl)
        ax.fill_between(g["flops_per_step"], g["ci_low_s"], g["ci_high_s"], color=c, alpha=0.2)
    best = analysis.best_peak_gflops(meta)
    if math.isfinite(best) and not w.empty:
        f = np.geomspace(w["flops_per_step"].min(), w["flops_per_step"].max(), 50)
        ax.plot(f, f / (best * 1e9), "k--", lw=1, label=f"roofline: FLOPs / {best:.0f} GFLOP/s peak")
    ax.set(xscale="log", yscale="log", xlabel="matrix-product FLOPs per training step",
           ylabel="median seconds per step (95% CI band)", title=PLOTS["step_time"])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_share(sh: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    for impl, g in _width(sh).groupby("impl", sort=False):
        if (g["floor_impl"] == impl).all():
            continue
        c, m = _style(impl)
        ax.plot(g["flops_per_step"], 100 * g["share"], marker=m, color=c, label=impl)
        ax.fill_between(g["flops_per_step"], 100 * g["share_lo"], 100 * g["share_hi"], color=c, alpha=0.15)
    ax.axhline(100 * analysis.SHARE_THRESHOLD, color="k", ls="--", lw=1, label=f"{analysis.SHARE_THRESHOLD:.0%}")
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xscale="log", xlabel="matrix-product FLOPs per training step",
           ylabel="overhead share (t - t_floor) / t, %", title=PLOTS["overhead_share"] + f" (floor: {', '.join(sorted(set(sh['floor_impl'].dropna())))})")
    ax.set_ylim(-20, 102)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_slowdown(sh: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    for impl, g in _width(sh).groupby("impl", sort=False):
        c, m = _style(impl)
        ax.plot(g["flops_per_step"], g["slowdown"], marker=m, color=c, label=impl)
    ax.set(xscale="log", yscale="log", xlabel="matrix-product FLOPs per training step",
           ylabel="median step time / fastest at that size", title=PLOTS["slowdown"])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_first_call(res: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    df = res[res["first_call_s"].notna() & ~res["impl"].isin(analysis.roles(res).control)]
    impls = list(dict.fromkeys(df["impl"]))
    for i, impl in enumerate(impls):
        v = df.loc[df["impl"] == impl, "first_call_s"].to_numpy()
        c, _ = _style(impl)
        ax.barh(i, np.median(v), color=c)
        ax.plot([v.min(), v.max()], [i, i], "k-", lw=1)
        ax.text(v.max() * 1.15, i, f"median {np.median(v):.3g} s", va="center", fontsize=8)
    ax.set_yticks(range(len(impls)), impls)
    ax.set(xscale="log", xlabel="seconds for the first call on a fresh build (bar: median over sizes, line: min..max)",
           title=PLOTS["first_call"])
    ax.grid(True, axis="x", which="both", alpha=0.3)
    _save(fig, path)


def plot_depth(ok: pd.DataFrame, summaries: list[analysis.ImplSummary], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    by = {s.impl: s for s in summaries}
    for impl, g in ok.groupby("impl", sort=False):
        d = analysis.depth_points(g)
        if d.empty:
            continue
        c, m = _style(impl)
        ax.plot(d["ops_per_step"], d["median_s"] * 1e6, m, color=c)
        s = by.get(impl)
        if s and math.isfinite(s.us_per_op):
            x = d["ops_per_step"].to_numpy(float)
            y = d["median_s"].to_numpy(float) * 1e6
            compute = d["flops_per_step"].to_numpy(float) / (s.rate_gflops * 1e3) if math.isfinite(s.rate_gflops) else 0
            icpt = np.median(y - compute - s.us_per_op * x)
            ax.plot(x, icpt + compute + s.us_per_op * x, "-", color=c, label=f"{impl}: {s.us_per_op:.2f} µs/op")
    ax.set(yscale="log", xlabel="framework ops per training step (depth sweep at fixed batch and width)",
           ylabel="median µs per step", title=PLOTS["depth"])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def headlines(res: pd.DataFrame, sh: pd.DataFrame, summaries: list[analysis.ImplSummary], meta: dict) -> list[str]:
    """Sentences generated from the numbers; each names where its number comes from."""
    out = []
    fixed = [s for s in summaries if math.isfinite(s.fixed_us)]
    if fixed:
        parts = [f"{s.impl} {s.fixed_us:.1f} µs [{s.fixed_us_lo:.1f}, {s.fixed_us_hi:.1f}]" for s in fixed]
        out.append("Fixed cost per training step (fit of t = a + FLOPs / r over the width sweep, 95% CI): "
                   + "; ".join(parts) + ".")
    per_op = [s for s in summaries if math.isfinite(s.us_per_op)]
    if per_op:
        parts = [f"{s.impl} {s.us_per_op:.2f} µs [{s.us_per_op_lo:.2f}, {s.us_per_op_hi:.2f}]" for s in per_op]
        out.append("Cost per framework op (depth sweep slope, 95% CI): " + "; ".join(parts) + ".")
    floors = set(sh["floor_impl"].dropna())
    cross = [s for s in summaries if s.impl not in floors and math.isfinite(s.fixed_us)]
    if cross:
        parts = []
        for s in cross:
            if s.crossover:
                span = (f"CI from {s.crossover_earliest} to {s.crossover_latest or 'beyond the sweep'}"
                        if s.crossover_earliest != s.crossover_latest else "CI: same size")
                parts.append(f"{s.impl} from {s.crossover} ({s.crossover_flops:.2g} FLOP/step; {span})")
            else:
                parts.append(f"{s.impl} not within the sweep")
        floor = ", ".join(sorted(set(sh["floor_impl"].dropna())))
        out.append(f"Overhead share under {analysis.SHARE_THRESHOLD:.0%} of the step (floor: {floor}): "
                   + "; ".join(parts) + ".")
    w = _width(sh)
    if not w.empty:
        worst = w.loc[w["slowdown"].idxmax()]
        fastest_t = w.loc[w["size"] == worst["size"], "median_s"].min()
        out.append(f"Largest slowdown: {worst['impl']} takes {us(worst['median_s'])} µs per step at {worst['size']}, "
                   f"{worst['slowdown']:.0f}x the fastest there ({worst['fastest_impl']}, {us(fastest_t)} µs).")
        big = w[w["flops_per_step"] == w["flops_per_step"].max()]
        parts = [f"{r['impl']} {r['pct_peak']:.0f}%" for _, r in big.iterrows() if math.isfinite(r["pct_peak"])]
        if parts:
            out.append(f"At the largest size ({big['size'].iloc[0]}, {big['flops_per_step'].iloc[0] / 1e9:.1f} GFLOP/step), "
                       "percent of the framework's own measured matmul peak: " + ", ".join(parts) + ".")
    control = analysis.roles(res).control
    null = res[res["impl"].isin(control) & (res["status"] == "ok")]
    if not null.empty:
        out.append(f"Harness cost per timed call ({', '.join(sorted(control))}, median over sizes): "
                   f"{null['median_s'].median() * 1e9:.0f} ns.")
    bad = res[~res["status"].isin(["ok"])]
    if not bad.empty:
        out.append(f"{len(bad)} case(s) not ok: " + ", ".join(f"{r['impl']} {r['size']} ({r['status']})" for _, r in bad.iterrows()) + ".")
    return out


def table_medians(res: pd.DataFrame) -> str:
    """size x impl table of median µs per step; * noisy, status word when not ok."""
    impls, grid = median_grid(res)
    lines = ["| size | GFLOP/step | " + " | ".join(impls) + " |", "|---|---:|" + "---:|" * len(impls)]
    for size, g, cells in grid:
        lines.append(f"| {size} | {g['flops_per_step'].iloc[0] / 1e9:.3g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table_share(sh: pd.DataFrame) -> str:
    w = _width(sh)
    impls = [i for i in dict.fromkeys(w["impl"])]
    lines = ["| size | floor | " + " | ".join(impls) + " |", "|---|---|" + "---:|" * len(impls)]
    for size, g in w.groupby("size", sort=False):
        cells = []
        for impl in impls:
            r = g[g["impl"] == impl]
            cells.append(f"{100 * r['share'].iloc[0]:.0f}%" if not r.empty else "")
        lines.append(f"| {size} | {g['floor_impl'].iloc[0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table_summary(summaries: list[analysis.ImplSummary], roles: analysis.Roles) -> str:
    lines = ["| impl | fixed µs/step [95% CI] | effective GFLOP/s [95% CI] | µs/op [95% CI] | share < 5% from | % peak at largest | max first call s |",
             "|---|---:|---:|---:|---|---:|---:|"]
    for s in summaries:
        lines.append(
            f"| {s.impl} | {s.fixed_us:.2f} [{s.fixed_us_lo:.2f}, {s.fixed_us_hi:.2f}] | "
            f"{s.rate_gflops:.0f} [{s.rate_gflops_lo:.0f}, {s.rate_gflops_hi:.0f}] | "
            f"{s.us_per_op:.3f} [{s.us_per_op_lo:.3f}, {s.us_per_op_hi:.3f}] | "
            f"{s.crossover or _no_crossover(s, roles)} | "
            f"{s.pct_peak_largest:.0f}% | {s.first_call_s_max:.3g} |"
        )
    return "\n".join(lines)


def _no_crossover(s: analysis.ImplSummary, roles: analysis.Roles) -> str:
    if s.impl in roles.floor or not math.isfinite(s.crossover_flops) and s.impl in roles.fused:
        return "(floor)"
    return "not reached"


def header(meta: dict) -> list[str]:
    """Title and one line on the machine, software and settings of the run."""
    m, s = meta["machine"], meta["settings"]
    return [f"# Framework overhead, {s.get('model', 'mlp')}: run {meta['run_id']}", "",
            f"{m['cpu_model']}, {s['threads']} thread(s) of {m['cores_logical']} cores, {m['memory_total_gb']} GB; "
            f"{m['os']}; Python {m['python']}; "
            + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + f"; commit {m.get('git_commit')}; "
            f"{s['rounds']} rounds, {s['budget']['seconds']} s sampling per case and round; started {meta['created_utc']}, "
            f"status {meta['status']}."]


def write_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    res, samples, meta = analysis.load(run_dir)
    roles = analysis.roles(res)
    ok = res[(res["status"] == "ok") & ~res["impl"].isin(roles.control)]
    sh = analysis.shares(res, meta)
    summaries = analysis.summarize(res, samples, meta)
    atomic_write(run_dir / "analysis.csv", analysis.summary_frame(summaries).to_csv(index=False))
    if not ok.empty:
        plot_step_time(ok, meta, run_dir / "step_time.png")
        plot_share(sh, run_dir / "overhead_share.png")
        plot_slowdown(sh, run_dir / "slowdown.png")
        plot_depth(ok, summaries, run_dir / "depth.png")
    plot_first_call(res, run_dir / "first_call.png")
    peaks = meta.get("peaks", {})
    model = meta["settings"].get("model", "mlp")
    md = header(meta)
    md += ["", "## Headlines", ""] + [f"- {h}" for h in headlines(res, sh, summaries, meta)]
    md += ["", "![step time](step_time.png)", "",
           "## Median µs per training step", "",
           "Median of all samples of all rounds; `*` marks a noisy row (cv > 10%, median CI wider than ±5%, "
           "or round medians > 10% apart); a status word replaces the number of a case that is not ok. "
           "CIs, IQR and per-round spread are in results.csv.", "", table_medians(res), "",
           "## Decomposition per implementation", "",
           "Fixed cost and effective rate: robust fit of t = a + FLOPs / r over the width sweep "
           "(bootstrap CI over rounds and samples). µs/op: Theil-Sen slope over the depth sweep (compute at the "
           "fitted rate taken out), ops per step as each implementation counts them: ATen ops dispatched in one "
           "eager step (torch), jaxpr equations (jax), NumPy calls (MLP) or layer-function calls (GPT, C) "
           "counted from the code; column ops_per_step. Written to analysis.csv.", "",
           table_summary(summaries, roles), "", "![depth](depth.png)", "",
           "## Overhead share", "",
           "(t - t_floor) / t at each width-sweep size; t_floor is the C + BLAS loop (c.ref) where it ran, "
           "else the fastest fused implementation. Negative: faster than the floor.", "", table_share(sh), "",
           "![overhead share](overhead_share.png)", "", "![slowdown](slowdown.png)", "",
           "## Measured peaks", "", "| framework | matmul n | median GFLOP/s | best GFLOP/s |", "|---|---:|---:|---:|"]
    for fw, p in peaks.items():
        if "gflops" in p:
            md.append(f"| {fw} | {p['n']} | {p['gflops']:.0f} | {p['gflops_best']:.0f} |")
        else:
            md.append(f"| {fw} | - | {p.get('error', 'not measured')} | |")
    md += ["", "## First call", "", "![first call](first_call.png)", "",
           "## Equivalence gate", "",
           f"Largest errors against the float64 reference over all sizes (tolerances in models/{model}/model.py).", "",
           "| impl | max loss rel. error | max update rel. error |", "|---|---:|---:|"]
    for impl, g in res.groupby("impl", sort=False):
        if g["loss_rel_err"].notna().any():
            md.append(f"| {impl} | {g['loss_rel_err'].max():.1e} | {g['update_rel_err'].max():.1e} |")
    bad = res[res["status"] != "ok"]
    if not bad.empty:
        md += ["", "## Cases not ok", "", "| impl | size | status | error |", "|---|---|---|---|"]
        md += [f"| {r['impl']} | {r['size']} | {r['status']} | {str(r['error']).replace('|', '/')} |" for _, r in bad.iterrows()]
    md += ["", f"Regenerate: `python -m bench report {run_dir}`.", ""]
    path = run_dir / "report.md"
    atomic_write(path, "\n".join(md))
    return path
