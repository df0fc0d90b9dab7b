"""`bench claim`'s output: the step as one table (term, formula, inputs, seconds, share), the MFU,
the framework-free saving, the assumptions beside them; with --search, both stacks' best layouts.
Markdown for a terminal or a committed report, or one JSON object."""

from __future__ import annotations

import dataclasses

from bench.claim import answer, search
from bench.claim.formulas import FITTED, PARAMS, model_flops, total_params
from bench.claim.memory import memory
from bench.claim.model import Step

MFU_CONVENTION = (
    "model FLOPs (Megatron-LM: 72 B s l h^2 (1 + s/6h + V/12lh) for h = ffn/4, "
    "attention counted non-causally, no recomputation) / (step x GPUs x the dtype's "
    "dense peak)"
)


def md_table(head: list[str], rows: list[list[str]], right: int = 0) -> list[str]:
    """A Markdown table; the last `right` columns right-aligned."""
    align = ["---"] * (len(head) - right) + ["---:"] * right
    return [f"| {' | '.join(head)} |", f"|{'|'.join(align)}|"] + [
        f"| {' | '.join(r)} |" for r in rows
    ]


def layout_json(s: Step) -> dict:
    return search.layout_of(s.config) | {
        "step_s": s.seconds,
        "mfu": s.mfu,
        "memory_gib": memory(s.config).total_gib,
        "breakdown_s": {t.name: t.seconds for t in s.terms},
    }


def as_json(s: Step, v: answer.Verdict | None = None) -> dict:
    sec, share = answer.saving(s)
    c, mem = s.config, memory(s.config)
    out = {
        "config": c.name,
        "step_s": s.seconds,
        "mfu": s.mfu,
        "mfu_convention": MFU_CONVENTION,
        "breakdown_s": {t.name: t.seconds for t in s.terms},
        "framework_free_saving_s": sec,
        "framework_free_share": share,
        "memory_gib_per_gpu": mem.total_gib,
        "memory_rank": mem.rank,
        "gpus": c.gpus,
        "parameters": total_params(c),
        "model_flops": model_flops(c),
        "assumptions": assumptions(s),
    }
    if v is not None:
        out |= {
            "best": layout_json(v.best),
            "best_framework_free": layout_json(v.best_free),
            "saving_s": v.saving_s,
            "saving_share": v.share,
            "layouts_tried": v.tried,
            "layouts_fit": v.fit,
        }
    return out


def assumptions(s: Step) -> dict:
    c = s.config
    return {
        "model": dataclasses.asdict(c.model),
        "parallel": dataclasses.asdict(c.parallel)
        | {"schedule": c.schedule, "microbatches_per_pipeline": c.microbatches},
        "hardware": dataclasses.asdict(c.gpu)
        | {"dtype": c.hardware.dtype, "nic_gbs_used": c.hardware.nic_gbs or c.gpu.nic_gbs},
        "software": dataclasses.asdict(c.software),
        "host": s.host.source,
        "params": dataclasses.asdict(PARAMS) | {"fitted": list(FITTED)},
    }


def describe(s: Step) -> str:
    c, g, p, m = s.config, s.config.gpu, s.config.parallel, s.config.model
    mem = memory(c)
    return (
        f"{c.gpus:,} x {g.name} ({c.hardware.dtype}); model {m.layers} layers x {m.hidden} "
        f"wide ({total_params(c) / 1e9:,.0f} B parameters), seq {m.seq}; tp {p.tp}, pp {p.pp} "
        f"(v = {p.virtual_stages}, {c.schedule}), dp {p.dp}, cp {p.cp}; microbatch "
        f"{p.microbatch}, {c.microbatches} microbatches per pipeline; recompute "
        f"{p.recompute}; {mem.total_gib:.0f} GiB per GPU of {g.hbm_gib:g} (pipeline rank "
        f"{mem.rank})."
    )


def step_table(s: Step) -> list[str]:
    sec, share = answer.saving(s)
    rows = [
        [t.name, t.formula, t.inputs, f"{t.seconds:.4g}", f"{t.seconds / s.seconds:.1%}"]
        for t in s.terms
    ]
    rows += [
        ["**step**", "sum of the terms", "", f"**{s.seconds:.4g}**", "100%"],
        ["**MFU**", MFU_CONVENTION, "", f"{s.mfu:.1%}", ""],
        [
            "**framework-free saving**",
            "host launch and schedule time the GPU's work does not hide",
            "what a stack with no framework overhead and an ideal schedule removes "
            "from this layout",
            f"{sec:.3g}",
            f"{share:.2%}",
        ],
    ]
    return md_table(["term", "formula", "inputs", "seconds", "share of step"], rows, right=2)


def verdict_lines(v: answer.Verdict) -> list[str]:
    rows = []
    for name, s in (("framework stack", v.best), ("framework-free stack", v.best_free)):
        lay = search.layout_of(s.config)
        rows.append(
            [
                name,
                f"tp {lay['tp']}, pp {lay['pp']}, v {lay['virtual_stages']}, "
                f"dp {lay['dp']}, cp {lay['cp']}, microbatch {lay['microbatch']} "
                f"(M = {lay['microbatches']}), {lay['recompute']}, {lay['schedule']}",
                f"{s.seconds:.4g}",
                f"{s.mfu:.1%}",
                f"{s.term('framework host overhead'):.3g}",
            ]
        )
    return (
        [
            f"Layout search: {v.tried:,} layouts of the GPU count tried, {v.fit:,} fit in memory; "
            "the best of each stack:",
            "",
        ]
        + md_table(["stack", "best layout", "step s", "MFU", "host overhead s"], rows, right=3)
        + [
            "",
            f"**Saving of the framework-free stack: {v.saving_s:.3g} s, {v.share:.2%} of the "
            f"framework stack's best step.**",
            "",
        ]
    )


def markdown(s: Step, v: answer.Verdict | None = None) -> str:
    c = s.config
    lines = [f"## bench claim: {c.name or 'config'}", "", describe(s), ""] + step_table(s) + [""]
    if v is not None:
        lines += verdict_lines(v)
    lines += [
        "Assumptions:",
        "",
        f"- hardware: {c.gpu.source}",
        f"- host: {s.host.source}",
        "- named parameters: "
        + ", ".join(f"{k} {v:g}" for k, v in dataclasses.asdict(PARAMS).items())
        + f"; fitted to both published tables: {', '.join(FITTED)} (`python -m bench "
        "claim --validate --refit`); the others assumed",
        f"- software: {dataclasses.asdict(c.software)}",
        "",
    ]
    return "\n".join(lines)
