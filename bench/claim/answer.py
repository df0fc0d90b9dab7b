"""The answer to the claim for one config: what a stack with no framework overhead and an ideal
schedule would save (the host overhead the step exposes, the schedule's cost included), and where
in the space of layouts and hosts that share would pass 5% and 20%."""

from __future__ import annotations

import dataclasses
import itertools

from bench.claim import model
from bench.claim.config import Config, ConfigError, with_changes
from bench.claim.formulas import check_memory
from bench.claim.host import host_cost

THRESHOLDS = (0.05, 0.20)
HOST_FACTORS = (1.0, 2.7, 10.0, 30.0, 100.0)


def saving(s: model.Step) -> tuple[float, float]:
    """(seconds, share of the step) a framework-free stack with an ideal schedule removes."""
    t = s.term("framework host overhead")
    return t, t / s.seconds


def evaluate(c: Config) -> model.Step:
    sw = c.software
    return model.step(c, host_cost(sw.framework, sw.host, sw.host_factor))


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def variants(c: Config) -> list[dict]:
    """The grid: microbatch 1, 2, 4; every pp from half to twice the config's that divides the
    layers; every dp that divides the config's (the GPU count follows); the microbatches per
    pipeline kept as configured (the global batch follows), so each pipeline stays as full."""
    p, M = c.parallel, c.microbatches
    pps = [d for d in divisors(c.model.layers // p.virtual_stages) if p.pp / 2 <= d <= 2 * p.pp]
    return [{"microbatch": mb, "pp": pp, "dp": dp, "global_batch": M * mb * dp}
            for mb, pp, dp in itertools.product((1, 2, 4), pps, divisors(p.dp))]


def sweep(c: Config) -> list[dict]:
    """Every valid grid point with its step and share, sorted by share; an impossible one (out of
    memory, say) is left out and counted in the last row's `skipped`."""
    rows, skipped = [], 0
    for change in variants(c):
        try:
            base = check_memory(with_changes(c, **change))
        except ConfigError:
            skipped += 1
            continue
        for f in HOST_FACTORS:
            sw = dataclasses.replace(base.software, host_factor=f)
            s = model.step(base, host_cost(sw.framework, sw.host, f))
            sec, share = saving(s)
            rows.append({**change, "gpus": base.gpus, "microbatches": base.microbatches, "host_factor": f,
                         "step_s": s.seconds, "mfu": s.mfu, "saving_s": sec, "share": share})
    return [dict(r, skipped=skipped) for r in sorted(rows, key=lambda r: r["share"])]


def host_factor_for(c: Config, share: float, hi: float = 1000.0) -> float:
    """The host speed (x this project's machine) from which a framework-free stack would save
    `share` of this config's step (bisection; inf if not even at `hi`)."""
    def at(f: float) -> float:
        sw = c.software
        return saving(model.step(c, host_cost(sw.framework, sw.host, f)))[1]

    lo = 1.0
    if at(hi) < share:
        return float("inf")
    if at(lo) >= share:
        return lo
    for _ in range(20):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if at(mid) < share else (lo, mid)
    return hi


def first_over(rows: list[dict], threshold: float) -> dict | None:
    """The grid point passing the threshold with the fastest host (then the most GPUs)."""
    over = [r for r in rows if r["share"] > threshold]
    return min(over, key=lambda r: (r["host_factor"], -r["gpus"], -r["microbatch"])) if over else None
