"""`bench claim`'s output: the step as one table (term, formula, inputs, seconds, share), the MFU,
the answer, the assumptions beside it; as Markdown for a terminal or a committed report, or JSON."""

from __future__ import annotations

import dataclasses

from bench.claim import answer
from bench.claim.formulas import FITTED, PARAMS, memory_gb, model_flops, total_params
from bench.claim.hardware import HARDWARE
from bench.claim.host import HOST_FACTOR
from bench.claim.model import Step

MFU_CONVENTION = ("model FLOPs (Megatron-LM: 72 B s l h^2 (1 + s/6h + V/12lh) for h = ffn/4, no recomputation "
                  "counted) / (step time x GPUs x dense BF16 peak)")


def as_json(s: Step, rows: list[dict] | None = None) -> dict:
    sec, share = answer.saving(s)
    out = {"config": s.config.name, "step_s": s.seconds, "mfu": s.mfu, "mfu_convention": MFU_CONVENTION,
           "breakdown_s": {t.name: t.seconds for t in s.terms}, "framework_free_saving_s": sec,
           "framework_free_share": share, "memory_gb_per_gpu": memory_gb(s.config), "gpus": s.config.gpus, "parameters": total_params(s.config),
           "model_flops": model_flops(s.config), "assumptions": assumptions(s)}
    if rows is not None:
        out["over"] = {f"{t:.0%}": answer.first_over(rows, t) for t in answer.THRESHOLDS}
        out["host_factor_for"] = {f"{t:.0%}": answer.host_factor_for(s.config, t) for t in answer.THRESHOLDS}
    return out


def assumptions(s: Step) -> dict:
    c = s.config
    return {"model": dataclasses.asdict(c.model), "parallel": dataclasses.asdict(c.parallel) | {
                "schedule": c.schedule, "microbatches_per_pipeline": c.microbatches},
            "hardware": dataclasses.asdict(HARDWARE[c.hardware.gpu]) | {"dtype": c.hardware.dtype},
            "software": dataclasses.asdict(c.software), "host": s.host.source,
            "params": dataclasses.asdict(PARAMS) | {"fitted": list(FITTED)}}


def markdown(s: Step, rows: list[dict] | None = None) -> str:
    c, g = s.config, HARDWARE[s.config.hardware.gpu]
    sec, share = answer.saving(s)
    lines = [f"## bench claim: {c.name or 'config'}", "",
             f"{c.gpus:,} x {g.name} ({c.hardware.dtype}); model {c.model.layers} layers x {c.model.hidden} wide "
             f"({total_params(c) / 1e12:.3g} T parameters), seq {c.model.seq}; tp {c.parallel.tp}, pp {c.parallel.pp} (v = "
             f"{c.parallel.virtual_stages}, {c.schedule}), dp {c.parallel.dp}, cp {c.parallel.cp}; microbatch "
             f"{c.parallel.microbatch}, {c.microbatches} microbatches per pipeline; recompute {c.parallel.recompute}; "
             f"{memory_gb(c):.0f} GB per GPU of {g.hbm_gb:g}.", "",
             "| term | formula | inputs | seconds | share of step |", "|---|---|---|---:|---:|"]
    for t in s.terms:
        lines.append(f"| {t.name} | {t.formula} | {t.inputs} | {t.seconds:.4g} | {t.seconds / s.seconds:.1%} |")
    lines += [f"| **step** | sum of the terms | | **{s.seconds:.4g}** | 100% |",
              f"| **MFU** | {MFU_CONVENTION} | | {s.mfu:.1%} | |",
              f"| **framework-free saving** | host launch and schedule time the GPU's work does not hide | what a "
              f"stack with no framework overhead and an ideal schedule removes | {sec:.3g} | {share:.2%} |"]
    if rows is not None:
        for t in answer.THRESHOLDS:
            r, f = answer.first_over(rows, t), answer.host_factor_for(c, t)
            where = "nowhere in the grid" if r is None else (
                f"microbatch {r['microbatch']}, pp {r['pp']}, dp {r['dp']} ({r['gpus']:,} GPUs) with a host "
                f"{r['host_factor']:g}x this project's machine: {r['share']:.1%}")
            lines.append(f"| **share over {t:.0%}** | first grid point over it; this layout's host speed for it | "
                         f"{where} | host {f:.3g}x (Grace {HOST_FACTOR['grace']:g}x) | |")
    lines += [""]
    if rows is not None:
        lines += sweep_lines(rows)
    lines += ["Assumptions:", "",
              f"- hardware: {g.source}",
              f"- host: {s.host.source}",
              f"- named parameters: {', '.join(f'{k} {v:g}' for k, v in dataclasses.asdict(PARAMS).items())}; "
              f"fitted to the published A100 runs: {', '.join(FITTED)} (`python -m bench claim --validate --refit`); "
              "the others assumed",
              f"- software: {dataclasses.asdict(c.software)}", ""]
    return "\n".join(lines)


def sweep_lines(rows: list[dict]) -> list[str]:
    skipped = rows[0]["skipped"] if rows else 0
    out = [f"Where the share would pass {' and '.join(f'{t:.0%}' for t in answer.THRESHOLDS)} ({len(rows)} grid "
           "points: microbatch 1, 2, 4; every pp from half to twice this one that divides the layers; every dp "
           "that divides this one, so fewer GPUs; the microbatches per pipeline kept; host "
           f"{', '.join(f'{f:g}x' for f in answer.HOST_FACTORS)} this project's machine; {skipped} layouts out of "
           "memory or impossible, left out):", ""]
    for t in answer.THRESHOLDS:
        r = answer.first_over(rows, t)
        out.append(f"- over {t:.0%}: " + ("nowhere in the grid" if r is None else
                   f"first with a host {r['host_factor']:g}x slower: microbatch {r['microbatch']}, pp {r['pp']}, "
                   f"dp {r['dp']} ({r['gpus']:,} GPUs, {r['microbatches']} microbatches), share {r['share']:.1%} of "
                   f"a {r['step_s']:.3g} s step"))
    top = rows[-1] if rows else None
    if top:
        out.append(f"- largest share in the grid: {top['share']:.2%} (host {top['host_factor']:g}x, microbatch "
                   f"{top['microbatch']}, pp {top['pp']}, dp {top['dp']})")
    return out + [""]
