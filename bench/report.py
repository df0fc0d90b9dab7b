"""`python -m bench report RUN_DIR`: report.md, analysis.csv and PNG plots from a run's files."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bench import analysis, plots
from bench.results import atomic_write
from bench.tables import fmt_us, median_grid


def us(x: float) -> str:
    """Microseconds with sensible digits (the same format as the terminal summary)."""
    return "n/a" if x is None or not math.isfinite(x) else fmt_us(x)


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
    w = analysis.width_rows(sh)
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
    w = analysis.width_rows(sh)
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
            f"{s['rounds']} rounds (each in fresh worker processes), {s['budget']['seconds']} s sampling per case "
            f"and round; started {meta['created_utc']}, status {meta['status']}.", "", noise_line(meta)]


def noise_line(meta: dict) -> str:
    """What made the machine noisy during the run, where the OS exposes it."""
    n = meta.get("noise") or {}
    if not n:
        return "Machine noise: not recorded."
    gov = n.get("governor") or "not exposed"
    steal = f"{n['steal_pct']:.2f}% of CPU time" if n.get("steal_pct") is not None else "not reported"
    load = lambda k: ", ".join(f"{x:g}" for x in n.get(k) or []) or "?"  # noqa: E731
    return (f"Machine noise: CPU frequency governor {gov}; steal time during the run {steal}; load average "
            f"(1, 5, 15 min) {load('loadavg_start')} at the start, {load('loadavg_end')} at the end.")


def image(name: str, why: dict[str, str]) -> list[str]:
    """The plot, or one line saying why it is not drawn."""
    if why.get(name):
        return [f"*{plots.PLOTS[name]}: not drawn, {why[name]}.*", ""]
    return [f"![{plots.PLOTS[name].lower()}]({name}.png)", ""]


def section_peaks(meta: dict) -> list[str]:
    md = ["## Measured peaks", "", "| framework | matmul n | median GFLOP/s | best GFLOP/s |", "|---|---:|---:|---:|"]
    for fw, p in meta.get("peaks", {}).items():
        if "gflops" in p:
            md.append(f"| {fw} | {p['n']} | {p['gflops']:.0f} | {p['gflops_best']:.0f} |")
        else:
            md.append(f"| {fw} | - | {p.get('error', 'not measured')} | |")
    return md + [""]


def section_gate(res: pd.DataFrame, model: str) -> list[str]:
    md = ["## Equivalence gate", "",
          f"Largest errors against the float64 reference over all sizes (tolerances in models/{model}/model.py).", "",
          "| impl | max loss rel. error | max update rel. error |", "|---|---:|---:|"]
    for impl, g in res.groupby("impl", sort=False):
        if g["loss_rel_err"].notna().any():
            md.append(f"| {impl} | {g['loss_rel_err'].max():.1e} | {g['update_rel_err'].max():.1e} |")
    bad = res[res["status"] != "ok"]
    if not bad.empty:
        md += ["", "## Cases not ok", "", "| impl | size | status | error |", "|---|---|---|---|"]
        md += [f"| {r['impl']} | {r['size']} | {r['status']} | {str(r['error']).replace('|', '/')} |"
               for _, r in bad.iterrows()]
    return md + [""]


def write_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    res, rounds, meta = analysis.load(run_dir)
    roles = analysis.roles(res)
    sh = analysis.shares(res, meta)
    summaries = analysis.summarize(res, rounds, meta)
    atomic_write(run_dir / "analysis.csv", analysis.summary_frame(summaries).to_csv(index=False))
    why = plots.draw_all(run_dir, res, sh, summaries, meta)
    md = header(meta)
    md += ["", "## Headlines", ""] + [f"- {h}" for h in headlines(res, sh, summaries, meta)] + [""]
    md += image("step_time", why)
    md += ["## Median µs per training step", "",
           "Geometric mean of the per-process medians (each round runs in its own worker processes); "
           "`*` marks a noisy row (95% CI over processes wider than ±5%, or within-process IQR over 25% "
           "of the median); a status word replaces the number of a case that is not ok. "
           "CIs, IQR and the drift between processes (round_sd) are in results.csv.", "", table_medians(res), "",
           "## Decomposition per implementation", "",
           "Fixed cost and effective rate: robust fit of t = a + FLOPs / r over the width sweep "
           "(bootstrap CI over worker processes). µs/op: Theil-Sen slope over the depth sweep (compute at the "
           "fitted rate taken out), ops per step as each implementation counts them: ATen ops dispatched in one "
           "eager step (torch), jaxpr equations (jax), NumPy calls (MLP) or layer-function calls (GPT, C) "
           "counted from the code; column ops_per_step. Written to analysis.csv.", "",
           table_summary(summaries, roles), ""]
    md += image("depth", why)
    md += ["## Overhead share", "",
           "(t - t_floor) / t at each width-sweep size; t_floor is the C + BLAS loop (c.ref) where it ran, "
           "else the fastest fused implementation. Negative: faster than the floor.", "", table_share(sh), ""]
    md += image("overhead_share", why) + image("slowdown", why)
    md += section_peaks(meta) + ["## First call", ""] + image("first_call", why)
    md += section_gate(res, meta["settings"].get("model", "mlp"))
    md += [f"Regenerate: `python -m bench report {run_dir}`.", ""]
    path = run_dir / "report.md"
    atomic_write(path, "\n".join(md))
    return path
