"""The answer to the claim for one model on one cluster: the fastest layout a framework stack can
run (this project's measured host costs) against the fastest a framework-free stack can run (no
host overhead, an ideal schedule), each from the layout search, and what the second saves. Then
how far each assumption moves that answer."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from bench.claim import model, search
from bench.claim.config import Config, with_changes
from bench.claim.formulas import PARAMS, Params
from bench.claim.host import NONE, HostCost, host_cost


def framework_host(c: Config) -> HostCost:
    sw = c.software
    return host_cost(sw.framework, sw.host, sw.host_factor)


def saving(s: model.Step) -> tuple[float, float]:
    """(seconds, share of the step) a framework-free stack with an ideal schedule removes from
    this layout: the host time the GPU's work does not hide."""
    t = s.term("framework host overhead")
    return t, t / s.seconds


@dataclass(frozen=True)
class Verdict:
    best: model.Step  # the framework stack's fastest layout
    best_free: model.Step  # the framework-free stack's fastest layout
    tried: int
    fit: int

    @property
    def saving_s(self) -> float:
        return self.best.seconds - self.best_free.seconds

    @property
    def share(self) -> float:
        return self.saving_s / self.best.seconds


def verdict(
    c: Config,
    pr: Params = PARAMS,
    host: HostCost | None = None,
    cands: tuple[list[Config], int] | None = None,
    progress: Callable[[], None] | None = None,
) -> Verdict:
    """Both stacks' best layouts over the same candidates (computed here unless given)."""
    fit, tried = cands or search.candidates(c, progress)
    if not fit:
        raise ValueError("no layout of this model fits these GPUs' memory")
    top = search.best(fit, host or framework_host(c), pr)
    free = search.best(fit, NONE, pr)
    return Verdict(top.step, free.step, tried, len(fit))


@dataclass(frozen=True)
class Variation:
    assumption: str
    value: str
    verdict: Verdict


def _host_variations(c: Config) -> list[tuple[str, str, Config]]:
    sw = c.software
    out = [
        ("host speed", f"{f:g}x this project's CPU", with_changes(c, host_factor=f))
        for f in (1.0, 10.0, 30.0, 100.0)
    ]
    out += [
        (
            "kernels per layer",
            f"{k} (default {model.KERNELS_PER_LAYER})",
            with_changes(c, kernels_per_layer=k),
        )
        for k in (30, 60)
    ]
    out.append(
        (
            "CUDA graphs",
            "on" if not sw.cuda_graphs else "off",
            with_changes(c, cuda_graphs=not sw.cuda_graphs),
        )
    )
    return out


def _layout_variations(c: Config) -> list[tuple[str, str, Config]]:
    """Changes that change which layouts fit: FP8 (MX block scaling where the GPU has it), and a
    global batch half as large (fewer microbatches to fill the pipeline)."""
    p, out = c.parallel, []
    if c.hardware.dtype != "fp8" and c.gpu.fp8_tflops:
        recipe = "block" if c.gpu.mx_fp8 else "tensor"
        out.append(
            ("dtype", f"fp8 ({recipe} scaling)", with_changes(c, dtype="fp8", fp8_recipe=recipe))
        )
    half = p.global_batch // 2
    if half % (p.microbatch * p.dp) == 0:
        out.append(
            ("global batch", f"{half:,} sequences (half)", with_changes(c, global_batch=half))
        )
    return out


def _param_variations() -> list[tuple[str, str, Params]]:
    return (
        [
            (
                "attention efficiency",
                f"attn_eff {v:g} (default {PARAMS.attn_eff:g})",
                dataclasses.replace(PARAMS, attn_eff=v),
            )
            for v in (0.3, 0.7)
        ]
        + [
            (
                "matmul efficiency",
                f"gemm_eff x {k:g}",
                dataclasses.replace(PARAMS, gemm_eff=PARAMS.gemm_eff * k),
            )
            for k in (0.8, 1.1)
        ]
        + [
            (
                "link efficiency",
                f"link_eff {v:g} (default {PARAMS.link_eff:g})",
                dataclasses.replace(PARAMS, link_eff=v),
            )
            for v in (0.5, 0.95)
        ]
        + [
            (
                "data-parallel exposure",
                f"dp_exposed {v:g} (fitted {PARAMS.dp_exposed:g})",
                dataclasses.replace(PARAMS, dp_exposed=v),
            )
            for v in (0.2, 1.0)
        ]
    )


def sensitivity(c: Config, base: Verdict, cands: tuple[list[Config], int]) -> list[Variation]:
    """The verdict with one assumption changed at a time. Host-side changes re-search the
    framework stack only (the framework-free stack has no host cost); model parameters re-search
    both; recomputation is fixed to one kind in both searches."""
    rows = []
    for name, value, changed in _host_variations(c):
        top = search.best(cands[0], framework_host(changed))
        rows.append(Variation(name, value, Verdict(top.step, base.best_free, base.tried, base.fit)))
    for name, value, pr in _param_variations():
        rows.append(Variation(name, value, verdict(c, pr, cands=cands)))
    for name, value, changed in _layout_variations(c):
        rows.append(Variation(name, value, verdict(changed)))
    for kind in search.RECOMPUTE:
        only = [lay for lay in cands[0] if lay.parallel.recompute == kind]
        if only:
            rows.append(
                Variation("recomputation", f"{kind} only", verdict(c, cands=(only, cands[1])))
            )
    return rows
