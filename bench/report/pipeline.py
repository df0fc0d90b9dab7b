"""The report of a `bench pipeline` run: report.md and pipeline.png from pipeline.csv and run.json."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from bench import frameworks  # noqa: E402
from bench.results import (  # noqa: E402
    atomic_write,
    base_rounds,
    read_meta,
    read_pipeline,
    read_pipeline_samples,
)
from bench.schedules import SCHEDULES  # noqa: E402
from bench.schema import SchemaError  # noqa: E402
from bench.stats import welch_log  # noqa: E402


def load(run_dir: Path) -> tuple[pd.DataFrame, dict]:
    meta = read_meta(run_dir)
    df = read_pipeline(run_dir)
    if df.empty:
        raise SchemaError(f"{Path(run_dir) / 'pipeline.csv'} has no rows")
    return df, meta


def ms(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x * 1e3:.2f}"


def plot(df: pd.DataFrame, path: Path) -> str:
    ok = df[(df["status"] == "ok") & df["step_s"].notna()]
    if ok.empty:
        return "no ok case"
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5))
    for (fw, name), g in ok.groupby(["framework", "schedule"], sort=False):
        g = g.sort_values("microbatches")
        (line,) = ax.plot(g["microbatches"], g["step_s"] * 1e3, marker="o", label=f"{fw} {name}")
        ax.fill_between(
            g["microbatches"],
            g["ci_low_s"] * 1e3,
            g["ci_high_s"] * 1e3,
            color=line.get_color(),
            alpha=0.15,
        )
        if g["ideal_s"].notna().any():
            ax.plot(g["microbatches"], g["ideal_s"] * 1e3, ls=":", color=line.get_color())
    ax.set(
        xscale="log",
        xlabel="microbatches M",
        ylabel="ms per training step (dotted: simulated ideal)",
        title="Step time vs M per schedule",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    pipe = ok[~ok["schedule"].str.startswith("one-process")]
    labels = [f"{r.framework} {r.schedule} M{r.microbatches}" for r in pipe.itertuples()]
    compute = pipe["compute_s"] * 1e3
    rest = (pipe["ideal_s"] - pipe["compute_s"]).clip(lower=0) * 1e3
    resid = pipe["residual_s"].clip(lower=0) * 1e3
    bx.barh(labels, compute, label="busiest rank's compute")
    bx.barh(labels, rest, left=compute, label="bubble + sends of the ideal schedule")
    bx.barh(labels, resid, left=compute + rest, label="residual: running the schedule")
    bx.set(xlabel="ms per step", title="Decomposition")
    bx.tick_params(axis="y", labelsize=6)
    bx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return ""


def table(df: pd.DataFrame) -> str:
    lines = [
        "| framework | schedule | M | nodes x ranks | sends across nodes | rounds | "
        "step ms [95% CI] | CI half-width | compute ms | send ms | ideal ms | "
        "residual ms | bubble: theory / measured | grad err | status |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in df.itertuples():
        half = (r.ci_high_s - r.ci_low_s) / 2 / r.step_s
        lines.append(
            f"| {r.framework} | {r.schedule} | {r.microbatches} | {r.nodes} x {r.ranks_per_node} | "
            f"{r.cross_node_sends:g} | {r.rounds} | {ms(r.step_s)} "
            f"[{ms(r.ci_low_s)}, "
            f"{ms(r.ci_high_s)}] | {'-' if not math.isfinite(half) else f'±{half:.1%}'} | "
            f"{ms(r.compute_s)} | {ms(r.comm_s)} | {ms(r.ideal_s)} | {ms(r.residual_s)} | "
            f"{r.theory_bubble:.2f} / {r.measured_bubble:.2f} | {r.grad_rel_err:.1e} | "
            f"{r.status}{': ' + str(r.error).replace('|', '/') if r.error == r.error and r.error else ''} "
            "|"
        )
    return "\n".join(lines)


FORMS = frameworks.pipeline_forms()
COST_COLUMNS = tuple((fw, name) for fw, form in FORMS.items() for name in form.costed)


def label(fw: str, name: str) -> str:
    if name.startswith("hand-"):
        return f"ours {name[5:]} ({fw} send/recv)"
    return (FORMS[fw].label if fw in FORMS else fw) + " " + name


def cost_table(ok: pd.DataFrame) -> str:
    """Per M, the schedule cost (residual: step - simulated ideal, ms, with the step's 95% CI
    shifted by the ideal) of each framework's GPipe and 1F1B, ours and C's."""
    have = [c for c in COST_COLUMNS if ((ok["framework"] == c[0]) & (ok["schedule"] == c[1])).any()]
    if not have:
        return ""
    lines = ["| M | " + " | ".join(label(*c) for c in have) + " |", "|---:|" + "---:|" * len(have)]
    idx = ok.set_index(["framework", "schedule", "microbatches"])
    for m in sorted(ok.loc[~ok["schedule"].str.startswith("one-process"), "microbatches"].unique()):
        cells = []
        for fw, name in have:
            if (fw, name, m) not in idx.index:
                cells.append("-")
                continue
            r = idx.loc[(fw, name, m)]
            cells.append(
                f"{ms(r.residual_s)} [{ms(r.ci_low_s - r.ideal_s)}, {ms(r.ci_high_s - r.ideal_s)}]"
            )
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def round_medians(run_dir: Path) -> dict | None:
    """{(framework, schedule, M): per-round median step seconds} from pipeline_samples.csv; None when
    the file is missing or damaged (the ratios then go without their CIs)."""
    try:
        sm = read_pipeline_samples(run_dir)
    except SchemaError:
        return None
    med = sm.groupby(["framework", "schedule", "microbatches", "round"])["step_ns"].median() / 1e9
    return {k: g.to_numpy() for k, g in med.groupby(level=[0, 1, 2])}


def ratio(meds: dict | None, a: tuple, b: tuple, first: int | None = None) -> str:
    """b / a, the ratio of geometric means over rounds, with its 95% Welch CI (rounds as units; a
    row with extra rounds: Stein's, its sd from its `first` base rounds, bench/stats.welch_log)."""
    if meds is None or a not in meds or b not in meds:
        return "ratio n/a"
    r, lo, hi, _ = welch_log(meds[a], meds[b], first_a=first, first_b=first)
    return (
        f"{r:.2f}x [{lo:.2f}, {hi:.2f}]" if math.isfinite(lo) else f"{r:.2f}x [CI n/a: < 2 rounds]"
    )


def fastest(at: pd.DataFrame, meds: dict | None, first: int | None = None) -> str:
    """The fastest row, named only when its CI separates it from every other (Welch, rounds as
    units); otherwise the rows it ties with."""
    keys = list(at.index)
    best = at["step_s"].idxmin()
    tied = [best]
    for k in keys:
        if k == best:
            continue
        if meds is None or k not in meds or best not in meds:
            separate = at.loc[k, "ci_low_s"] > at.loc[best, "ci_high_s"]
        else:
            separate = welch_log(meds[best], meds[k], first_a=first, first_b=first)[1] > 1
        if not separate:
            tied.append(k)
    name = " ".join(best[:2])
    if len(tied) == 1:
        return f"fastest {name} {ms(at.loc[best, 'step_s'])} ms"
    others = ", ".join(" ".join(k[:2]) for k in tied[1:])
    return f"no single fastest: {name} {ms(at.loc[best, 'step_s'])} ms ties with {others} (95% CIs overlap)"


def against_floor(at: pd.DataFrame, best: dict, meds, first) -> str:
    """Each framework's best schedule against the floor's (the framework record that is one)."""
    floors = [fw for fw in best if fw in FORMS and frameworks.pipeline_framework(fw).floor]
    if not floors:
        return ""
    c, part = best[floors[0]], ""
    for fw in (f for f in best if f != floors[0]):
        k = best[fw]
        add = at.loc[k, "step_s"] - at.loc[c, "step_s"]
        part += (
            f"; {label(*k[:2])} {ms(at.loc[k, 'step_s'])} ms against the {FORMS[floors[0]].label} "
            f"floor's {c[1]} {ms(at.loc[c, 'step_s'])} ms: {ratio(meds, c, k, first)}, the "
            "framework "
            f"adds {ms(add)} ms ({add / at.loc[k, 'step_s']:.0%} of its step)"
        )
    return part


def ours_against_theirs(at: pd.DataFrame, m: int, meds, first) -> str:
    """The framework's own schedules against ours written over its send/recv (`hand-*`)."""
    part = ""
    for fw, form in FORMS.items():
        for hand in (s for s in form.schedules if SCHEDULES[s].kind == "hand"):
            t, h = (fw, hand[len("hand-") :], m), (fw, hand, m)
            if t in at.index and h in at.index:
                part += (
                    f"; schedule cost of {form.label}'s {t[1]} {ms(at.loc[t, 'residual_s'])} ms vs "
                    f"ours {ms(at.loc[h, 'residual_s'])} ms (steps {ratio(meds, h, t, first)})"
                )
    return part


def headlines(df: pd.DataFrame, meds: dict | None = None, first: int | None = None) -> list[str]:
    """Per M: the fastest (or the tie); the C floor against each framework's best schedule, as a
    ratio with its CI and as what the framework adds (ms and share of its step); the cost of
    running PyTorch's GPipe and 1F1B against ours. Then each pipeline's speed-up over its
    framework's one-process baseline (P threads on the same P CPUs)."""
    ok = df[(df["status"] == "ok") & df["step_s"].notna()].set_index(
        ["framework", "schedule", "microbatches"]
    )
    out = []
    pipes = ok[~ok.index.get_level_values("schedule").str.startswith("one-process")]
    for m in sorted({k[2] for k in pipes.index}):
        at = pipes[pipes.index.get_level_values("microbatches") == m]
        part = f"M = {m}: {fastest(at, meds, first)}"
        best = {fw: g["step_s"].idxmin() for fw, g in at.groupby(level="framework")}
        part += against_floor(at, best, meds, first) + ours_against_theirs(at, m, meds, first)
        out.append(part + ".")
    for fw in dict.fromkeys(k[0] for k in ok.index):
        base = (fw, "one-process", 1)
        if base not in ok.index:
            continue
        fw_pipes = pipes[pipes.index.get_level_values("framework") == fw]
        if fw_pipes.empty:
            continue
        k = fw_pipes["step_s"].idxmin()
        out.append(
            f"{label(fw, 'one-process')} (P threads on the ranks' CPUs) "
            f"{ms(ok.loc[base, 'step_s'])} ms; its "
            f"best pipeline {k[1]} M = {k[2]} {ms(fw_pipes.loc[k, 'step_s'])} ms: "
            f"{ratio(meds, base, k, first)} "
            "(below 1: the pipeline is faster)."
        )
    return out


def extra(meta: dict) -> str:
    more = meta.extra_rounds or {}
    if not more:
        return ""
    return (
        f", then extra rounds for {len(more)} cases whose CI was still wider than +-8% (up to "
        f"{max(more.values())}, decided once from the first rounds: Stein's two-stage interval)"
    )


def write_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    df, meta = load(run_dir)
    why = plot(df, run_dir / "pipeline.png")
    s = meta.settings
    fws = s["frameworks"]
    where = (
        f"{s.get('nnodes')} nodes of {s['stages'] // s.get('nnodes')} ranks, joined at "
        f"{s.get('rdzv_endpoint')}"
        if s.get("nnodes", 1) > 1
        else "one node, loopback only"
    )
    md = [
        f"# Pipeline parallelism, {s['model']}: run {meta.run_id}",
        "",
        f"{meta.machine.get('cpu_model')}; frameworks {', '.join(fws)}; P = {s['stages']} "
        "ranks of one thread "
        f"each ({where}; {s['device']}); the one-process baselines: one process of P threads on "
        "the same P CPUs; "
        f"{s['rounds']} rounds (each fresh processes){extra(meta)}, {s['steps']} timed steps per "
        "case and round; model "
        f"config {s['config']}; commit {meta.machine.get('git_commit')}; status "
        f"{meta.status}.",
        *[f"Note: {n}" for n in s.get("notes", [])],
        "",
        "## Headlines",
        "",
    ]
    md += [f"- {h}" for h in headlines(df, round_medians(run_dir), base_rounds(meta))] + [""]
    md += [
        "Ratios are of geometric means over rounds with a 95% Welch CI, rounds (fresh process "
        "groups) as units; "
        "a fastest pick is made only where the CIs separate.",
        "",
    ]
    ok = df[(df["status"] == "ok") & df["step_s"].notna()]
    cost = cost_table(ok)
    if cost:
        md += [
            "## Schedule cost per M",
            "",
            "Residual ms: step - the simulated ideal of the schedule's own order "
            "with its measured stage and send times (the cost of running the schedule: the "
            "library's, ours, or "
            "C's), [the step's 95% CI minus the ideal].",
            "",
            cost,
            "",
        ]
    md += [
        "## All cases",
        "",
        "Definitions: step: rank 0's time from a barrier before the step to a barrier after it "
        "(JAX: from the "
        "call until its parameters are ready; median per round, geometric mean over rounds, "
        "t-interval CI); "
        "compute: the busiest rank's stages alone, forward and backward, M microbatches; send: "
        "one-way time of "
        "one activation; ideal: the schedule's own action order simulated with those times; "
        "residual: step - "
        "ideal; theory bubble: the schedule's formula (bench/schedules.py); measured bubble: 1 - "
        "compute / step.",
        "",
    ]
    md += [
        f"*Not drawn: {why}.*" if why else "![pipeline](pipeline.png)",
        "",
        table(df),
        "",
        f"Regenerate: `python -m bench report {run_dir}`.",
        "",
    ]
    path = run_dir / "report.md"
    atomic_write(path, "\n".join(md))
    return path
