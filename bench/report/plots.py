"""The report's plots (PNG). Each plot function returns '' when drawn, else why it was not
(no rows of that kind in this run): the report then says so instead of showing a stale image."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench import frameworks  # noqa: E402
from bench.report import analysis  # noqa: E402

PLOTS = {
    "step_time": "Step time vs FLOPs per step",
    "overhead_share": "Overhead share vs FLOPs per step",
    "slowdown": "Slowdown against the fastest implementation",
    "first_call": "First call (tracing, compilation) per implementation",
    "depth": "Depth sweep: step time vs framework ops per step",
}


def _style(impl: str):
    # one colour and marker per implementation, stable across plots and runs
    return frameworks.style(impl)


def plot_step_time(ok: pd.DataFrame, meta: dict, path: Path) -> str:
    w = analysis.width_rows(ok)
    device = w["device"].iloc[0] if not w.empty else "cpu"
    if w.empty:
        return "no ok row in the width sweep"
    fig, ax = plt.subplots(figsize=(8, 5.5))
    _lines(ax, w, lambda g: g["median_s"], lambda g: (g["ci_low_s"], g["ci_high_s"]), 0.2)
    best = analysis.best_peak_gflops(meta.peaks, device)
    if math.isfinite(best) and not w.empty:
        f = np.geomspace(w["flops_per_step"].min(), w["flops_per_step"].max(), 50)
        ax.plot(
            f, f / (best * 1e9), "k--", lw=1, label=f"roofline: FLOPs / {best:.0f} GFLOP/s peak"
        )
    return _finish(
        fig,
        ax,
        path,
        yscale="log",
        ylabel="median seconds per step (95% CI band)",
        title=PLOTS["step_time"],
    )


def plot_share(sh: pd.DataFrame, path: Path) -> str:
    w = analysis.width_rows(sh)
    w = w[w["share"].notna() & (w["floor_impl"] != w["impl"])]
    if w.empty:
        return NO_FLOOR if sh.empty or sh["t_floor"].isna().all() else "no row besides the floor"
    fig, ax = plt.subplots(figsize=(8, 5))
    _lines(
        ax,
        w,
        lambda g: 100 * g["share"],
        lambda g: (100 * g["share_lo"], 100 * g["share_hi"]),
        0.15,
    )
    ax.axhline(
        100 * analysis.SHARE_THRESHOLD,
        color="k",
        ls="--",
        lw=1,
        label=f"{analysis.SHARE_THRESHOLD:.0%}",
    )
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylim(-20, 102)
    return _finish(
        fig,
        ax,
        path,
        ylabel="overhead share (t - t_floor) / t, %",
        title=PLOTS["overhead_share"]
        + f" (floor: {', '.join(sorted(set(sh['floor_impl'].dropna())))})",
    )


def plot_slowdown(sh: pd.DataFrame, path: Path) -> str:
    w = analysis.width_rows(sh)
    if w.empty:
        return "no ok row in the width sweep"
    fig, ax = plt.subplots(figsize=(8, 5))
    _lines(ax, w, lambda g: g["slowdown"])
    return _finish(
        fig,
        ax,
        path,
        yscale="log",
        ylabel="median step time / fastest at that size",
        title=PLOTS["slowdown"],
    )


def plot_first_call(res: pd.DataFrame, control: frozenset[str], path: Path) -> str:
    df = res[(res["first_call_s"] > 0) & ~res["impl"].isin(control)]
    if df.empty:
        return "no first call was timed"
    fig, ax = plt.subplots(figsize=(8, 4.5))
    impls = list(dict.fromkeys(df["impl"]))
    for i, impl in enumerate(impls):
        v = df.loc[df["impl"] == impl, "first_call_s"].to_numpy()
        c, _ = _style(impl)
        ax.barh(i, np.median(v), color=c)
        ax.plot([v.min(), v.max()], [i, i], "k-", lw=1)
        ax.text(v.max() * 1.15, i, f"median {np.median(v):.3g} s", va="center", fontsize=8)
    ax.set_yticks(range(len(impls)), impls)
    ax.set(
        xscale="log",
        xlabel="seconds for the first call on a fresh build (bar: median over sizes, line: "
        "min..max)",
        title=PLOTS["first_call"],
    )
    ax.grid(True, axis="x", which="both", alpha=0.3)
    return _save(fig, path)


def plot_depth(ok: pd.DataFrame, summaries: tuple[analysis.ImplSummary, ...], path: Path) -> str:
    if ok.empty or analysis.depth_points(ok).empty:
        return "no ok row in the depth sweep"
    fig, ax = plt.subplots(figsize=(8, 5))
    by = {s.impl: s for s in summaries}
    for impl, g in ok.groupby("impl", sort=False):
        d = analysis.depth_points(g)
        if d.empty:
            continue
        c, m = _style(impl)
        ax.plot(d["ops_per_step"], d["median_s"] * 1e6, m, color=c)
        s = by.get(impl)
        if s and math.isfinite(s.per_op.value):
            slope, rate = s.per_op.value, s.fit.rate.value
            x = d["ops_per_step"].to_numpy(float)
            y = d["median_s"].to_numpy(float) * 1e6
            compute = (
                d["flops_per_step"].to_numpy(float) / (rate * 1e3) if math.isfinite(rate) else 0
            )
            icpt = np.median(y - compute - slope * x)
            ax.plot(x, icpt + compute + slope * x, "-", color=c, label=f"{impl}: {slope:.2f} µs/op")
    ax.set(
        yscale="log",
        xlabel="framework ops per training step (depth sweep at fixed batch and width)",
        ylabel="median µs per step",
        title=PLOTS["depth"],
    )
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def _lines(ax, w: pd.DataFrame, y, band=None, alpha: float = 0.2) -> None:
    """One line per implementation over FLOPs per step, with a shaded (low, high) band if given."""
    for impl, g in w.groupby("impl", sort=False):
        c, m = _style(impl)
        ax.plot(g["flops_per_step"], y(g), marker=m, color=c, label=impl)
        if band is not None:
            ax.fill_between(g["flops_per_step"], *band(g), color=c, alpha=alpha)


def _finish(fig, ax, path: Path, **labels) -> str:
    """Log FLOPs axis, grid, legend, saved."""
    ax.set(xscale="log", xlabel="matrix-product FLOPs per training step", **labels)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return ""


NO_FLOOR = (
    "no floor in this run: the bare C reference (c.ref) has no ok row, so no overhead is computed"
)


def draw_all(run_dir: Path, a: analysis.Analysis) -> dict[str, str]:
    """Every plot of the report: name -> '' (drawn) or why not (any stale image is removed)."""
    why = {
        "step_time": plot_step_time(a.ok, a.meta, run_dir / "step_time.png"),
        "overhead_share": plot_share(a.shares, run_dir / "overhead_share.png"),
        "slowdown": plot_slowdown(a.shares, run_dir / "slowdown.png"),
        "depth": plot_depth(a.ok, a.summaries, run_dir / "depth.png"),
        "first_call": plot_first_call(a.results, a.roles.control, run_dir / "first_call.png"),
    }
    for name, reason in why.items():
        if reason:
            (run_dir / f"{name}.png").unlink(missing_ok=True)
    return why
