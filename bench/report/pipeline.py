"""The report of a `bench pipeline` run: report.md and pipeline.png from pipeline.csv and run.json."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from bench.results import atomic_write, read_meta, read_table  # noqa: E402
from bench.schema import PIPELINE_COLUMNS, SchemaError  # noqa: E402


def load(run_dir: Path) -> tuple[pd.DataFrame, dict]:
    meta = read_meta(run_dir)
    df = read_table(Path(run_dir) / "pipeline.csv", PIPELINE_COLUMNS)
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
    for name, g in ok.groupby("schedule", sort=False):
        g = g.sort_values("microbatches")
        line, = ax.plot(g["microbatches"], g["step_s"] * 1e3, marker="o", label=name)
        ax.fill_between(g["microbatches"], g["ci_low_s"] * 1e3, g["ci_high_s"] * 1e3, color=line.get_color(), alpha=0.15)
        if g["ideal_s"].notna().any():
            ax.plot(g["microbatches"], g["ideal_s"] * 1e3, ls=":", color=line.get_color())
    ax.set(xscale="log", xlabel="microbatches M", ylabel="ms per training step (dotted: simulated ideal)",
           title="Step time vs M per schedule")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    pipe = ok[~ok["schedule"].str.startswith("one-process")]
    labels = [f"{r.schedule} M{r.microbatches}" for r in pipe.itertuples()]
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
    lines = ["| schedule | M | step ms [95% CI] | compute ms | send ms | ideal ms | residual ms | bubble: theory / "
             "measured | grad err | status |", "|---|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    for r in df.itertuples():
        lines.append(f"| {r.schedule} | {r.microbatches} | {ms(r.step_s)} [{ms(r.ci_low_s)}, {ms(r.ci_high_s)}] | "
                     f"{ms(r.compute_s)} | {ms(r.comm_s)} | {ms(r.ideal_s)} | {ms(r.residual_s)} | "
                     f"{r.theory_bubble:.2f} / {r.measured_bubble:.2f} | {r.grad_rel_err:.1e} | "
                     f"{r.status}{': ' + str(r.error).replace('|', '/') if r.error == r.error and r.error else ''} |")
    return "\n".join(lines)


def headlines(df: pd.DataFrame) -> list[str]:
    """Per M: the fastest schedule, and the cost of running each schedule (step - simulated
    ideal) for PyTorch's GPipe and 1F1B against the hand-written ones over the same group."""
    ok = df[(df["status"] == "ok") & df["step_s"].notna()].set_index(["schedule", "microbatches"])
    out = []
    for m in sorted({m for _, m in ok.index}):
        at = ok.xs(m, level="microbatches")
        best = at["step_s"].idxmin()
        part = f"M = {m}: fastest {best} {ms(at.loc[best, 'step_s'])} ms"
        for torch_name, hand in (("gpipe", "hand-gpipe"), ("1f1b", "hand-1f1b")):
            if torch_name in at.index and hand in at.index:
                t, h = at.loc[torch_name, "residual_s"], at.loc[hand, "residual_s"]
                ratio = f"{t / h:.2f}x" if h > 0 else "n/a"
                part += f"; schedule cost of PyTorch's {torch_name} {ms(t)} ms vs ours {ms(h)} ms ({ratio})"
        multi = at[at.index.isin(["interleaved-1f1b", "zb", "zbv", "dualpipev"])]
        if not multi.empty:
            part += "; multi-stage schedules " + ", ".join(f"{n} {ms(r.step_s)} ms" for n, r in multi.iterrows())
        out.append(part + ".")
    return out


def write_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    df, meta = load(run_dir)
    why = plot(df, run_dir / "pipeline.png")
    s = meta["settings"]
    md = [f"# Pipeline parallelism, {s['model']}: run {meta['run_id']}", "",
          f"{meta['machine'].get('cpu_model')}; P = {s['stages']} ranks, one thread each, gloo on 127.0.0.1 "
          f"({s['device']}); {s['rounds']} rounds (each a fresh process group), {s['steps']} timed steps per case "
          f"and round; model config {s['config']}; commit {meta['machine'].get('git_commit')}; status {meta['status']}.",
          *[f"Note: {n}" for n in s.get("notes", [])], "", "## Headlines", ""]
    md += [f"- {h}" for h in headlines(df)] + [""]
    md += ["Definitions: step: rank 0's time from a barrier before the step to a barrier after it (median per "
           "round, geometric mean over rounds, t-interval CI); compute: the busiest rank's stages alone, forward and "
           "backward, M microbatches; send: one-way time of one activation; ideal: the schedule's own action order "
           "simulated with those times; residual: step - ideal, the cost of running the schedule (the library's or "
           "ours); theory bubble: the schedule's formula (bench/schedules.py); measured bubble: 1 - compute / "
           "step.", ""]
    md += [f"*Not drawn: {why}.*" if why else "![pipeline](pipeline.png)", "", table(df), "",
           f"Regenerate: `python -m bench report {run_dir}`.", ""]
    path = run_dir / "report.md"
    atomic_write(path, "\n".join(md))
    return path
