"""`python -m bench report RUN_DIR`: report.md, analysis.csv and PNG plots from a run's files."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bench.report import analysis, plots
from bench.report.headlines import DEFINITIONS, headlines, us
from bench.results import atomic_write
from bench.tables import median_grid


def grid(rows: pd.DataFrame, impls: list[str], cell, first_cols=("size",)) -> str:
    """A size x implementation markdown table; cell(row) formats one case ('' when absent)."""
    lines = [
        "| " + " | ".join(first_cols) + " | " + " | ".join(impls) + " |",
        "|" + "---|" * len(first_cols) + "---:|" * len(impls),
    ]
    for size, g in rows.groupby("size", sort=False):
        by = {r["impl"]: r for _, r in g.iterrows()}
        head = [size] + [str(g[c].iloc[0]) for c in first_cols[1:]]
        lines.append(
            "| "
            + " | ".join(head)
            + " | "
            + " | ".join(cell(by[i]) if i in by else "" for i in impls)
            + " |"
        )
    return "\n".join(lines)


def table_medians(res: pd.DataFrame) -> str:
    """size x impl table of median µs per step; * noisy, status word when not ok."""
    impls, cells = median_grid(res)
    lines = [
        "| size | GFLOP/step | " + " | ".join(impls) + " |",
        "|---|---:|" + "---:|" * len(impls),
    ]
    for size, g, row in cells:
        lines.append(
            f"| {size} | {g['flops_per_step'].iloc[0] / 1e9:.3g} | " + " | ".join(row) + " |"
        )
    return "\n".join(lines)


def table_overhead(sh: pd.DataFrame) -> str:
    w = analysis.width_rows(sh)
    impls = [
        i for i in dict.fromkeys(w["impl"]) if not (w.loc[w["impl"] == i, "floor_impl"] == i).all()
    ]
    return grid(
        w,
        impls,
        lambda r: (
            (
                f"{us(r['overhead_s'] * 1e6)} [{us(r['overhead_lo_s'] * 1e6)}, "
                f"{us(r['overhead_hi_s'] * 1e6)}] ({100 * r['share']:.0f}%)"
            )
            if math.isfinite(r["overhead_s"])
            else ""
        ),
    )


def table_summary(summaries: tuple[analysis.ImplSummary, ...], roles: analysis.Roles) -> str:
    lines = [
        "| impl | K | fixed cost a, µs/step [95% CI] | a' (memory traffic out), µs | fit RMS: a / "
        "a' | "
        "effective GFLOP/s [95% CI] | µs per layer op [95% CI] | share < 5% from | % peak at "
        "largest | "
        "max first call, s |",
        "|---|---:|---:|---:|---|---:|---:|---|---:|---:|",
    ]
    for s in summaries:
        f, p, e = s.fit, s.per_op, s.ends
        cross = e.crossover or (
            "(floor)"
            if s.impl in roles.floor
            else "not reached"
            if math.isfinite(e.overhead_large.value)
            else "no floor"
        )
        lines.append(
            f"| {s.impl} | {f.steps_per_call} | {us(f.fixed.value)} [{us(f.fixed.lo)}, "
            f"{us(f.fixed.hi)}] | "
            f"{us(f.fixed_minus_bytes_us)} | {f.fit_rms:.1%} / {f.fit_bytes_rms:.1%} | "
            f"{f.rate.value:.0f} [{f.rate.lo:.0f}, {f.rate.hi:.0f}] | "
            f"{p.value:.3f} [{p.lo:.3f}, {p.hi:.3f}] | {cross} | "
            f"{e.pct_peak_largest:.0f}% | {s.first_call_s_max:.3g} |"
        )
    return "\n".join(lines)


def table_work(res: pd.DataFrame, summaries: tuple[analysis.ImplSummary, ...], meta: dict) -> str:
    """At the smallest width size: the work a fit's intercept holds besides overhead."""
    bw = analysis.copy_bandwidth(meta.peaks)
    w = analysis.width_rows(res[res["status"] == "ok"])
    if w.empty:
        return "No ok width-sweep row."
    small = w[w["size"] == w["size"].iloc[0]].iloc[0]
    lines = [
        f"At {small['size']}: {small['flops_per_step']:.3g} matrix-product FLOPs, "
        f"{small['other_flops_per_step']:.3g} other FLOPs, {small['bytes_per_step']:.3g} bytes "
        "moved per step "
        f"(estimates in model.py). Measured copy bandwidth {bw:.0f} GB/s: the bytes alone take "
        f"{us(small['bytes_per_step'] / (bw * 1e9) * 1e6)} µs per step.",
        "",
        "| impl | other FLOPs at the fitted rate, µs | a, µs |",
        "|---|---:|---:|",
    ]
    for s in summaries:
        if math.isfinite(s.fit.fixed.value):
            lines.append(
                f"| {s.impl} | "
                f"{us(small['other_flops_per_step'] / (s.fit.rate.value * 1e9) * 1e6)} | "
                f"{us(s.fit.fixed.value)} |"
            )
    return "\n".join(lines)


def table_first_call(res: pd.DataFrame) -> str:
    rows = res[res["first_call_s"] > 0]
    impls = list(dict.fromkeys(rows["impl"]))
    return grid(rows, impls, lambda r: f"{r['first_call_s']:.3g} / {r['first_call_later_s']:.3g}")


def table_graphs(res: pd.DataFrame) -> str:
    rows = res[res["graphs"].notna()]
    if rows.empty:
        return "No compiled torch row in this run."
    impls = list(dict.fromkeys(rows["impl"]))
    return grid(rows, impls, lambda r: f"{r['graphs']:.0f} / {r['graph_breaks']:.0f}")


def header(meta: dict) -> list[str]:
    """Title and one line on the machine, software and settings of the run."""
    m, s = meta.machine, meta.settings
    commit = m.get("git_commit") or "unknown"
    dirty = (
        " **The tree had uncommitted changes: this run is not reproducible from a commit.**"
        if commit.endswith("-dirty")
        else ""
    )
    warnings = [f"**Warning: {w}.**" for w in meta.kernel_warnings]
    native = meta.native_kernels
    if native:
        cleared = native.get("cleared_for_workers") or {}
        warnings.append(
            "Run with --native-kernels: cleared for the workers: "
            + (", ".join(f"{k}={v}" for k, v in cleared.items()) or "nothing was set")
            + "."
        )
    return [
        f"# Framework overhead, {s.get('model', 'mlp')}: run {meta.run_id}",
        "",
        *warnings,
        *([""] if warnings else []),
        f"{m['cpu_model']}, {s['threads']} thread(s) of {m['cores_logical']} cores, "
        f"{m['memory_total_gb']} GB; "
        f"{m['os']}; Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
        + f"; commit {commit}; "
        f"{s['rounds']} rounds (each in fresh worker processes), {s['budget']['seconds']} s "
        "sampling per case "
        f"and round{chunks_note(s)}; started {meta.created_utc}, finished "
        f"{meta.finished_utc}, status {meta.status}." + dirty,
        "",
        noise_line(meta),
        *left_out_lines(s),
    ]


def chunks_note(settings: dict) -> str:
    """How a run's sampling was split (--chunks), when it was."""
    n = settings.get("chunks", 1)
    return f" in {n} chunks, the process's cases taking turns" if n > 1 else ""


def left_out_lines(settings: dict) -> list[str]:
    """What the preset left out of the run, with why (none: no line)."""
    left = settings.get("left_out") or {}
    return (
        [
            "",
            "Left out of this sweep (`--impl all` includes them): "
            + "; ".join(f"{name}: {why}" for name, why in left.items())
            + ".",
        ]
        if left
        else []
    )


def noise_line(meta: dict) -> str:
    """What made the machine noisy during the run, where the OS exposes it."""
    n = meta.noise or {}
    if not n:
        return "Machine noise: not recorded."
    gov = n.get("governor") or "not exposed"
    steal = (
        f"{n['steal_pct']:.2f}% of CPU time" if n.get("steal_pct") is not None else "not reported"
    )
    load = lambda k: ", ".join(f"{x:g}" for x in n.get(k) or []) or "?"  # noqa: E731
    return (
        f"Machine noise: CPU frequency governor {gov}; steal time during the run {steal}; load "
        "average "
        f"(1, 5, 15 min) {load('loadavg_start')} at the start, {load('loadavg_end')} at the end."
    )


def image(name: str, why: dict[str, str]) -> list[str]:
    """The plot, or one line saying why it is not drawn."""
    if why.get(name):
        return [f"*{plots.PLOTS[name]}: not drawn, {why[name]}.*", ""]
    return [f"![{plots.PLOTS[name].lower()}]({name}.png)", ""]


def section_peaks(meta: dict) -> list[str]:
    md = [
        "## Measured peaks",
        "",
        "| framework | device | matmul n | median GFLOP/s | best GFLOP/s | copy GB/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for fw, p in meta.peaks.items():
        if "gflops" in p:
            md.append(
                f"| {fw} | {p.get('device', 'cpu')} | {p['n']} | {p['gflops']:.0f} | "
                f"{p['gflops_best']:.0f} | "
                f"{p.get('copy_gbytes_per_s', float('nan')):.0f} |"
            )
        else:
            md.append(f"| {fw} | | - | {p.get('error', 'not measured')} | | |")
    best = {
        d: max(
            (
                (p["gflops"], fw)
                for fw, p in meta.peaks.items()
                if "gflops" in p and p.get("device", "cpu") == d
            ),
            default=None,
        )
        for d in ("cpu", "cuda")
    }
    for d, b in best.items():
        if b:
            md += [
                "",
                f"Machine peak ({d}): {b[0]:.0f} GFLOP/s, the fastest framework's ({b[1]}); "
                "pct_machine_peak "
                "measures every row against it, pct_peak against the row's own framework.",
            ]
    isa = meta.machine.get("cpu_isa") or {}
    theory = isa.get("theoretical_gflops")
    if theory:
        md += [
            "",
            f"Theoretical CPU peak from /proc/cpuinfo: {theory:.0f} GFLOP/s "
            f"({meta.machine.get('cores_logical')} "
            f"cores x 2 FMA units (assumed) x {16 if 'avx512f' in isa.get('flags', []) else 8} "
            "float32 lanes x 2 x "
            f"{isa.get('mhz'):.0f} MHz)"
            + (
                " - below the measured peak: the clock the OS shows is not the one the cores run "
                "at."
                if best["cpu"] and best["cpu"][0] > theory
                else "."
            ),
        ]
    return md + [""]


def section_gate(res: pd.DataFrame, model: str) -> list[str]:
    md = [
        "## Equivalence gate",
        "",
        "Largest errors against the float64 reference over all sizes (tolerances in "
        f"models/{model}/model.py).",
        "",
        "| impl | max loss rel. error | max update rel. error |",
        "|---|---:|---:|",
    ]
    for impl, g in res.groupby("impl", sort=False):
        if g["loss_rel_err"].notna().any():
            md.append(
                f"| {impl} | {g['loss_rel_err'].max():.1e} | {g['update_rel_err'].max():.1e} |"
            )
    bad = res[res["status"] != "ok"]
    if not bad.empty:
        md += ["", "## Cases not ok", "", "| impl | size | status | error |", "|---|---|---|---|"]
        md += [
            f"| {r['impl']} | {r['size']} | {r['status']} | {str(r['error']).replace('|', '/')} |"
            for _, r in bad.iterrows()
        ]
    return md + [""]


def body(a: analysis.Analysis, why: dict[str, str]) -> list[str]:
    res, sh, summaries, meta, roles = a.results, a.shares, a.summaries, a.meta, a.roles
    return [
        "## Median µs per training step",
        "",
        "Geometric mean of the per-process medians (each round runs in fresh worker processes); "
        "`*` marks a noisy "
        "row (95% CI over processes wider than ±5%, or within-process IQR over 25% of the "
        "median); a status word "
        "replaces the number of a case that is not ok. CIs, IQR and the drift between processes "
        "(round_sd) are in "
        "results.csv.",
        "",
        table_medians(res),
        "",
        "## Overhead against the C floor",
        "",
        f"Definition: {DEFINITIONS['overhead']}. Cells: overhead µs per step "
        "[95% CI] (share of the step). Negative: faster than the floor.",
        "",
        table_overhead(sh),
        "",
        *image("overhead_share", why),
        *image("slowdown", why),
        "## Decomposition per implementation",
        "",
        f"Fixed cost a: {DEFINITIONS['fixed']}. a': the same fit after taking out bytes_per_step "
        "at the measured "
        "copy bandwidth; fit RMS: relative RMS residual of each fit. µs per layer op: "
        f"{DEFINITIONS['per_op']}. "
        "Written to analysis.csv.",
        "",
        table_summary(summaries, roles),
        "",
        *image("depth", why),
        "### What the fixed cost holds besides overhead",
        "",
        table_work(res, summaries, meta),
        "",
    ]


def write_report(run_dir: Path) -> Path:
    """report.md, analysis.csv and the plots of a run, from one analysis of its files."""
    run_dir = Path(run_dir)
    a = analysis.analyze(run_dir)
    res, meta = a.results, a.meta
    atomic_write(run_dir / "analysis.csv", a.frame().to_csv(index=False))
    why = plots.draw_all(run_dir, a)
    md = header(meta) + ["", "## Headlines", ""] + [f"- {h}" for h in headlines(a)] + [""]
    md += image("step_time", why) + body(a, why)
    md += (
        section_peaks(meta)
        + [
            "## First call",
            "",
            "Seconds for the first call of a fresh build: the first process / the median of the "
            "later ones (persistent compile caches warm). Not part of any step time.",
            "",
            table_first_call(res),
            "",
        ]
        + image("first_call", why)
    )
    md += [
        "## Graphs per step (compiled torch rows)",
        "",
        "graphs / graph breaks Dynamo makes of one step (torch._dynamo.explain); reasons in "
        "run.json case_info.",
        "",
        table_graphs(res),
        "",
    ]
    md += section_gate(res, meta.settings.get("model", "mlp"))
    md += [f"Regenerate: `python -m bench report {run_dir}`.", ""]
    path = run_dir / "report.md"
    atomic_write(path, "\n".join(md))
    return path
