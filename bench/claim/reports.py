"""The committed reports of `bench claim` (`python -m bench claim --report results/claim`):
validation.md (both published tables, per run, table, GPU kind and held-out model; the pipeline
probe's replay), and through bench/claim/seed.py seed.md with seed.png."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.claim import model, presets, validate
from bench.claim.config import with_changes
from bench.claim.formulas import FITTED, PARAMS, Params
from bench.claim.host import ROOT, host_cost
from bench.claim.render import md_table

BLOOM_NIC_GBS = 6.25  # Jean Zay gpu_p5: 4 x 100 Gb/s Omni-Path per 8-GPU node (tr11 README)


def _pct(x: float) -> str:
    return f"{100 * x:+.1f}%"


@dataclass(frozen=True)
class Validation:
    params: Params
    refit: bool
    runs: pd.DataFrame
    held_out: pd.DataFrame
    probe: pd.DataFrame


def validation(refit: bool = False) -> Validation:
    host = host_cost("torch.eager", "xeon")  # the published stacks: PyTorch eager on Xeon hosts
    pr = validate.refit(host) if refit else PARAMS
    return Validation(
        pr, refit, validate.predict(host, pr), validate.leave_one_model_out(host), validate.probe()
    )


def validation_json(v: Validation) -> dict:
    def summ(df):
        mean, worst = validate.summary(df)
        return {"mean_abs_error": mean, "max_abs_error": worst}

    tables = {
        t: summ(v.runs[v.runs["table"] == t])
        | {"goal": dict(zip(("mean_abs_error", "max_abs_error"), validate.GOALS[t], strict=True))}
        for t in validate.GOALS
    }
    return {
        "params": dataclasses.asdict(v.params),
        "fitted": list(FITTED),
        "refit": v.refit,
        "runs": v.runs.to_dict("records"),
        "tables": tables,
        "gpus": validate.by(v.runs, "gpu").reset_index().to_dict("records"),
        "leave_one_model_out": summ(v.held_out) | {"goal": validate.LOMO_GOAL},
        "held_out": v.held_out.to_dict("records"),
        "probe": v.probe.to_dict("records"),
    }


def _run_rows(df: pd.DataFrame) -> list[list[str]]:
    return [
        [
            r.run,
            r.table,
            r.gpu,
            r.dtype,
            f"{r.measured_s:.2f}",
            f"{r.predicted_s:.2f}",
            _pct(r.error),
            f"{100 * r.mfu:.1f}%",
            f"{r.memory_gib:.1f} of {r.hbm_gib:g}",
        ]
        for r in df.itertuples()
    ]


def _by_rows(df: pd.DataFrame, goals: dict | None = None) -> list[list[str]]:
    rows = []
    for key, r in df.iterrows():
        goal = goals.get(key) if goals else None
        rows.append(
            [
                str(key),
                str(int(r.runs)),
                f"{100 * r.mean_abs_error:.2f}%",
                f"{100 * r.max_abs_error:.2f}%",
                f"{100 * goal[0]:g}% and {100 * goal[1]:g}%" if goal else "",
            ]
        )
    return rows


def _fp8_pairs(df: pd.DataFrame) -> list[list[str]]:
    """Runs twinned but for the dtype: the measured and predicted FP8 speedups."""
    rows = []
    for run in df[df["dtype"] == "fp8"].itertuples():
        twin = df[df["run"] == run.run.replace("_fp8_", "_bf16_")]
        if len(twin):
            t = twin.iloc[0]
            rows.append(
                [
                    f"{t.run} / {run.run}",
                    f"{t.measured_s / run.measured_s:.2f}",
                    f"{t.predicted_s / run.predicted_s:.2f}",
                ]
            )
    return rows


def _bloom_network(pr: Params) -> list[str]:
    """What the BLOOM run's own network (a quarter of a DGX A100's NIC per GPU) changes."""
    runs = {r.config.name: r for r in presets.published(("modern",))}
    run = runs.get("a100_bloom176b_384")
    if run is None:
        return []
    host = host_cost("torch.eager", "xeon")
    as_dgx = model.step(run.config, host, pr).seconds
    own = model.step(with_changes(run.config, nic_gbs=BLOOM_NIC_GBS), host, pr).seconds
    return [
        f"- a100_bloom176b_384 ran on Jean Zay's A100 nodes with four 100 Gb/s Omni-Path "
        f"links per 8 GPUs ({BLOOM_NIC_GBS:g} GB/s per GPU, against the DGX A100's 25), "
        "Megatron-DeepSpeed's pipeline engine (blocking sends of whole activations) and "
        "`CUDA_LAUNCH_BLOCKING=1` (bigscience tr11-176B-ml.slurm); its CSV columns carry none "
        f"of it. With its own NIC (`[hardware] nic_gbs = {BLOOM_NIC_GBS:g}`) the model gives "
        f"{own:.1f} s instead of {as_dgx:.1f} s ({_pct(own / run.measured_s - 1)} instead of "
        f"{_pct(as_dgx / run.measured_s - 1)}); the rest is the blocking sends and launches."
    ]


def headline(v: Validation) -> str:
    """The validation in one line (the README shows it word for word)."""
    parts = []
    for table, label in (
        ("table5", "Korthikanti et al. Table 5 (8 A100 runs, 2022 Megatron-LM)"),
        ("modern", "today's stacks (18 runs: A100, H100, B200, GB200; BF16 and FP8)"),
    ):
        mean, worst = validate.summary(v.runs[v.runs["table"] == table])
        goal = validate.GOALS[table]
        parts.append(
            f"{label}: mean |error| {100 * mean:.2f}%, largest {100 * worst:.2f}% "
            f"(goals {100 * goal[0]:g}% and {100 * goal[1]:g}%)"
        )
    mean, _ = validate.summary(v.held_out)
    limit = {t: g[1] for t, g in validate.GOALS.items()}
    over = [
        f"{r.run} {_pct(r.error)}" for r in v.runs.itertuples() if abs(r.error) > limit[r.table]
    ]
    beyond = f"; beyond the largest-error goal: {', '.join(over)}" if over else ""
    return (
        f"- **Validation of `bench claim`** on {len(v.runs)} published runs, each as it was run, "
        f"{len(FITTED)} fitted parameters shared by all: {'; '.join(parts)}; leave one model "
        f"out {100 * mean:.2f}% (goal {100 * validate.LOMO_GOAL:g}%){beyond}."
    )


def validation_markdown(v: Validation) -> str:
    df, lomo = v.runs, v.held_out
    tables = validate.by(df, "table")
    fitted = ", ".join(f"`{k} = {getattr(v.params, k):g}`" for k in FITTED)
    lines = [
        "# bench claim: validation",
        "",
        "Generated by `python -m bench claim --report results/claim` (the same tables: "
        "`python -m bench claim --validate`). Every published run of both tables "
        "(`bench/claim/published_runs.csv`: Korthikanti et al. 2022 Table 5; "
        "`bench/claim/modern_runs.csv`: DGX Cloud recipes, NeMo performance tables, BLOOM) is fed "
        "as a config of its CSV columns only, every other key at its default, and predicted "
        f"with one set of named parameters: {len(FITTED)} fitted to both tables together "
        f"({fitted}{', refitted now' if v.refit else ''}), the rest stated assumptions "
        "(`bench/claim/formulas.py`). Nothing is tuned per run. Memory is the estimate of the "
        "rank that needs the most, against the GPU's HBM.",
        "",
        "## Headlines",
        "",
        headline(v),
        "",
        "## Errors by table",
        "",
    ]
    lines += md_table(
        ["table", "runs", "mean abs error", "largest", "goal (mean, largest)"],
        _by_rows(tables, validate.GOALS),
        right=3,
    )
    lines += ["", "## By GPU kind", ""]
    lines += md_table(
        ["GPU", "runs", "mean abs error", "largest", ""], _by_rows(validate.by(df, "gpu")), right=3
    )
    mean, worst = validate.summary(lomo)
    lines += [
        "",
        "## Leave one model out",
        "",
        "The fitted parameters fitted again without every run of one model (a model: its "
        "layers x hidden), that model's runs predicted: how far the fit generalises to a "
        f"model it has not seen. Mean absolute error {100 * mean:.2f}% (goal "
        f"{100 * validate.LOMO_GOAL:g}%), largest {100 * worst:.2f}%.",
        "",
    ]
    lines += md_table(
        ["held-out model", "runs", "mean abs error", "largest", ""],
        _by_rows(validate.by(lomo, "model")),
        right=3,
    )
    lines += ["", "## Run by run", ""]
    lines += md_table(
        ["run", "table", "GPU", "dtype", "measured s", "predicted s", "error", "MFU", "memory GiB"],
        _run_rows(df),
        right=5,
    )
    lines += _outside_goals(v)
    lines += _probe_lines(v.probe)
    return "\n".join(lines) + "\n"


def _outside_goals(v: Validation) -> list[str]:
    df = v.runs
    limit = {t: g[1] for t, g in validate.GOALS.items()}
    over = df[df.apply(lambda r: abs(r.error) > limit[r.table], axis=1)]
    if not len(over):
        return []
    lines = [
        "",
        "## Outside the goals",
        "",
        f"{len(over)} run(s) beyond their table's largest-error goal: "
        + ", ".join(f"{r.run} ({_pct(r.error)})" for r in over.itertuples())
        + ".",
        "",
    ]
    lines += _bloom_network(v.params)
    pairs = _fp8_pairs(df)
    if pairs:
        lines += [
            "- The FP8 runs' speedup over their BF16 twins, measured and predicted (one FP8 "
            "matmul efficiency serves every run):",
            "",
        ]
        lines += md_table(["BF16 / FP8 runs", "measured speedup", "predicted"], pairs, right=2)
    return lines


def _probe_lines(df: pd.DataFrame) -> list[str]:
    lines = [
        "",
        "## This project's P = 2 CPU pipeline probe",
        "",
        "Measured step [95% CI] against the simulation of the schedule's order with its "
        "measured stage times and send; the difference is the schedule's cost.",
        "",
    ]
    rows = [
        [
            r.schedule,
            str(r.M),
            f"{1e3 * r.measured_s:.2f} [{1e3 * r.ci_low_s:.2f}, {1e3 * r.ci_high_s:.2f}]",
            f"{1e3 * r.predicted_s:.2f}",
            "yes" if r.within_ci else "no",
            f"{1e3 * r.schedule_cost_s:.2f}",
        ]
        for r in df.itertuples()
    ]
    return lines + md_table(
        ["schedule", "M", "measured ms [CI]", "predicted ms", "within CI", "schedule cost ms"],
        rows,
        right=4,
    )


def write(out: Path, progress: Callable[[], None] | None = None) -> list[Path]:
    """Both committed reports into `out`: validation.md, then seed.md and seed.png."""
    from bench.claim import seed

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "validation.md", out / "seed.md", out / "seed.png"]
    v = validation()
    paths[0].write_text(validation_markdown(v))
    r = seed.report(progress)
    seed.plot(r, paths[2])
    paths[1].write_text(seed.markdown(r, paths[2].name))
    page = fill_docs(out, [seed.headline(r), headline(v)])
    return paths + ([page] if page else [])


def fill_docs(out: Path, lines: list[str]) -> Path | None:
    """Write the headlines into docs/claim.md's `<!-- claim: DIR -->` block for this directory
    (the README's verdict quotes the reports themselves: bench report --readme)."""
    readme = ROOT / "docs" / "claim.md"
    try:
        rel = out.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return None
    text = readme.read_text() if readme.is_file() else ""
    pattern = re.compile(rf"(<!-- claim: {re.escape(rel)} -->\n).*?(<!-- end claim -->)", re.S)
    if not pattern.search(text):
        return None
    readme.write_text(pattern.sub(lambda m: m[1] + "\n".join(lines) + "\n" + m[2], text))
    return readme
