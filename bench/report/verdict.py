"""`bench report --readme`: the README's answer, generated from the reference runs named in
results/reference.toml and from the claim's reports: what each framework costs per step against
the C floor (smallest and largest sizes, with CIs), what is left of it at the largest size (the
matmul's speed), the pipeline probe's C against the frameworks, and the claim's verdict with its
validation. Only files are read: the claim's numbers come from its reports' headlines."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from bench import frameworks, reference
from bench.results import read_meta, read_pipeline, read_results

START, END = "<!-- verdict -->", "<!-- end verdict -->"
FLOOR = "c.ref"


def us(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    if abs(x) >= 1000:
        return f"{x / 1000:,.2f} ms"
    return f"{x:,.1f} µs" if abs(x) >= 10 else f"{x:.2f} µs"


def cell(row: pd.Series, which: str) -> str:
    value, lo, hi = (row[f"overhead_{which}{s}"] for s in ("_us", "_lo", "_hi"))
    return f"{us(value)} [{us(lo)}, {us(hi)}]"


def sweep(role: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    run = reference.path(role)
    results = read_results(run)
    analysis = pd.read_csv(run / "analysis.csv").set_index("impl")
    return results, analysis, {"run": reference.runs()[role], "meta": read_meta(run)}


def floor_step(results: pd.DataFrame, size: str) -> float:
    row = results[(results["impl"] == FLOOR) & (results["size"] == size)]
    return float(row["median_s"].iloc[0]) * 1e6 if len(row) else math.nan


def peak_share(results: pd.DataFrame, size: str) -> dict[str, float]:
    at = results[(results["size"] == size) & (results["status"] == "ok")]
    return dict(zip(at["impl"], at["pct_machine_peak"], strict=True))


def cost_table(models: dict[str, tuple]) -> list[str]:
    """One row per implementation: its overhead over the floor at each model's smallest and
    largest size, and the share of the machine's matmul peak it reaches at the largest."""
    head, rule, cols = "| implementation |", "|---|", []
    for name, (results, analysis, _) in models.items():
        small, large = analysis["smallest_size"].iloc[0], analysis["largest_size"].iloc[0]
        head += (
            f" {name} {small} (floor {us(floor_step(results, small))}) |"
            f" {name} {large} (floor {us(floor_step(results, large))}) | "
            f"{name} {large}: % of machine peak |"
        )
        rule += "---:|---:|---:|"
        cols.append((analysis, peak_share(results, large)))
    impls = [i for i in models["MLP"][1].index if i != FLOOR]
    lines = [head, rule]
    for impl in impls:
        cells = []
        for analysis, peaks in cols:
            row = analysis.loc[impl] if impl in analysis.index else None
            if row is None:
                cells += ["not run", "not run", "-"]
                continue
            peak = peaks.get(impl, math.nan)
            cells += [cell(row, "small"), cell(row, "large"), f"{peak:.0f}%"]
        lines.append(f"| {impl} | " + " | ".join(cells) + " |")
    floor_peaks = ", ".join(
        f"{name} {peaks.get(FLOOR, math.nan):.0f}%"
        for name, (_, peaks) in zip(models, cols, strict=True)
    )
    lines += ["", f"The C floor ({FLOOR}) reaches {floor_peaks} of the machine peak there."]
    return lines


def plain_words(models: dict[str, tuple]) -> list[str]:
    """The table in two sentences, from its own numbers."""
    results, analysis, _ = models["MLP"]
    small = analysis["smallest_size"].iloc[0]
    fast = analysis.drop(FLOOR)["overhead_small_us"].sort_values()
    large = analysis["largest_size"].iloc[0]
    peaks = peak_share(results, large)
    framework_peaks = [v for k, v in peaks.items() if k not in (FLOOR, "null.noop")]
    shares = (analysis.drop(FLOOR)["overhead_large_us"] / 1e6) / (
        floor_step(results, large) / 1e6 + analysis.drop(FLOOR)["overhead_large_us"] / 1e6
    )
    fused = analysis["steps_per_call"].to_dict()
    per_call = {
        i: f", {fused[i]} steps per call" if fused.get(i, 1) > 1 else "" for i in fast.index
    }
    floor_small = floor_step(results, small)
    above = int((fast > floor_small).sum())
    return [
        f"**In plain words.** At the smallest MLP ({small}) a step of the C floor takes "
        f"{us(floor_small)}; the frameworks add from {us(fast.iloc[0])} ({fast.index[0]}"
        f"{per_call[fast.index[0]]}) to {us(fast.iloc[-1])} ({fast.index[-1]}), and {above} of "
        f"{len(fast)} implementations add more than the floor's whole step: there the framework "
        f"is the step. At the largest ({large}, {us(floor_step(results, large))} for the floor) "
        f"the gaps are {np.nanmin(shares):.0%} to {np.nanmax(shares):.0%} of a step, with wide "
        "CIs, and they are not dispatch: the implementations run their matrix products at "
        f"{min(framework_peaks):.0f}% to {max(framework_peaks):.0f}% of the machine's matmul peak "
        f"against the floor's {peaks.get(FLOOR, math.nan):.0f}%, so what is left is mostly how "
        "fast each one's matmul runs on this CPU.",
    ]


def pipeline_best(role: str) -> tuple[float, dict[str, float]]:
    """(the floor's best step, each other framework's best step) in seconds, over every pipeline
    schedule and M of a probe (the floor: the framework record that is one)."""
    df = read_pipeline(reference.path(role))
    ok = df[(df["status"] == "ok") & (df["schedule"] != "one-process")]
    best = ok.groupby("framework")["step_s"].min()
    floor = [f for f in best.index if frameworks.pipeline_framework(f).floor]
    others = {k: float(v) for k, v in best.items() if k not in floor}
    return (float(best[floor[0]]) if floor else math.nan), others


def pipeline_lines() -> list[str]:
    parts = []
    for role, name in (("pipeline_mlp", "MLP"), ("pipeline_gpt", "GPT")):
        c, others = pipeline_best(role)
        ratios = {k: v / c for k, v in others.items()}
        low, high = min(ratios, key=ratios.get), max(ratios, key=ratios.get)
        parts.append(
            f"{name} ({reference.runs()[role]}): C's best step {c * 1e3:.2f} ms, "
            f"{ratios[low]:.2f}x faster than {low}'s best to {ratios[high]:.2f}x than {high}'s"
        )
    return [
        "**The CPU pipeline probe** (2 one-thread ranks, best schedule and M of each framework): "
        + "; ".join(parts)
        + ". Its stages compute for microseconds to milliseconds, so a framework's cost per op is "
        "a large part of each; the claim probe below carries the same measured costs to stages "
        "of a 10 T model on GB300, where they vanish.",
    ]


def claim_lines() -> list[str]:
    where = reference.path("claim")
    out = []
    for name in ("seed.md", "validation.md"):
        text = (where / name).read_text()
        head = re.search(r"## Headlines\n\n(.*?)(\n\n|\Z)", text, re.S)
        out += [ln[2:] for ln in head.group(1).splitlines() if ln.startswith("- ")] if head else []
    rel = reference.runs()["claim"]
    return [
        "**(b) Would a framework-free C stack win at 220,000 GB300?** "
        f"No, by this project's step-time model ([{rel}/seed.md]({rel}/seed.md)):",
        "",
        *[f"- {ln}" for ln in out],
    ]


def machine_line(models: dict[str, tuple]) -> str:
    meta = models["MLP"][2]["meta"]
    settings = meta.settings
    runs = ", ".join(f"[{m[2]['run']}]({m[2]['run']}/report.md)" for m in models.values())
    return (
        f"Measured on {meta.machine.get('cpu_model')} ({meta.machine.get('cores_logical')} "
        "vCPUs), "
        f"{settings.get('threads')} thread per worker, in the reference runs {runs} "
        "(`results/reference.toml`). Overhead: the step time less the C floor's at the same size, "
        "with its 95% CI over worker processes, paired by round."
    )


def block() -> str:
    """The README's verdict block, between its markers."""
    models = {"MLP": sweep("mlp"), "GPT": sweep("gpt")}
    lines = [
        START,
        "**(a) What does each framework cost per training step?** " + machine_line(models),
        "",
        *cost_table(models),
        "",
        *plain_words(models),
        "",
        *pipeline_lines(),
        "",
        *claim_lines(),
        "",
        f"![overhead share against model size]({reference.runs()['mlp']}/overhead_share.png)",
        END,
    ]
    return "\n".join(lines)


def headlines_of(report_md: str) -> list[str]:
    """The bullet lines of a report's Headlines section."""
    i = report_md.index("## Headlines") + len("## Headlines")
    section = report_md[i:].split("\n\n", 2)[1]
    return [ln for ln in section.splitlines() if ln.startswith("- ")]


def runs_lines() -> list[str]:
    lines = ["| role | run | machine | finished (UTC) | status |", "|---|---|---|---|---|"]
    for role, rel in reference.runs().items():
        if role == "claim":
            lines.append(f"| {role} | [{rel}]({'../' + rel}/seed.md) | - | - | - |")
            continue
        meta = read_meta(reference.path(role))
        lines.append(
            f"| {role} | [{rel}](../{rel}/report.md) | {meta.machine.get('cpu_model')} | "
            f"{meta.finished_utc} | {meta.status} |"
        )
    return lines


def aa_lines() -> list[str]:
    """The A/A pair's comparison: how many cases were called changed, which way, and the
    detectable change."""
    a, b = reference.runs()["mlp"], reference.runs()["mlp_aa"]
    cmp = pd.read_csv(reference.path("mlp_aa") / "compare_aa.csv", keep_default_na=False)
    changed = cmp[cmp["change"].astype(str).isin(["slower", "faster"])]
    ways = ", ".join(f"{n} {way} in B" for way, n in changed["change"].value_counts().items())
    return [
        f"`python -m bench compare {a} {b}`: {len(changed)} of {len(cmp)} cases "
        f"({len(changed) / len(cmp):.1%}) called changed{' (' + ways + ')' if ways else ''}; "
        f"the median detectable change is ±{cmp['detectable'].median():.1%} (largest "
        f"±{cmp['detectable'].max():.1%})."
    ]


def fill(text: str, start: str, end: str, lines: list[str]) -> str:
    """text with what lies between start and end replaced by lines; ValueError without them."""
    if start not in text or end not in text.split(start, 1)[1]:
        raise ValueError(f"no {start} ... {end} block")
    before, rest = text.split(start, 1)
    return before + start + "\n" + "\n".join(lines) + "\n" + end + rest.split(end, 1)[1]


def results_page(text: str) -> str:
    """docs/results.md with its generated blocks refreshed."""
    text = fill(text, "<!-- runs -->", "<!-- end runs -->", runs_lines())
    text = fill(text, "<!-- aa -->", "<!-- end aa -->", aa_lines())
    for role in reference.ROLES:
        start = f"<!-- headlines: {role} -->"
        if start in text:
            report = (reference.path(role) / "report.md").read_text()
            text = fill(text, start, "<!-- end headlines -->", headlines_of(report))
    return text


def readme_text(text: str) -> str:
    return fill(text, START, END, block().split("\n")[1:-1])


def write(readme: Path, results_md: Path) -> list[Path]:
    """The README's verdict and docs/results.md's blocks, in place; ValueError (naming the file)
    when a block's markers are missing."""
    out = []
    for path, refresh in ((readme, readme_text), (results_md, results_page)):
        try:
            Path(path).write_text(refresh(Path(path).read_text()))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        out.append(Path(path))
    return out
