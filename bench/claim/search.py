"""`bench claim CONFIG --search`: the fastest layout of a model on a cluster, for one stack.

A layout is tp x pp x dp x cp (using every GPU of the config), virtual stages, microbatch,
recomputation and schedule; the model, the GPUs, the global batch and the software stay as
configured. Every layout that the config's checks accept and whose memory fits is a candidate.
Each candidate gets a lower bound (its busiest rank's work for every microbatch, plus the data
parallel and optimizer terms: no schedule beats it); the candidates are then simulated in order of
that bound until the bound passes the best simulated step, so the result is the true best of the
grid at the cost of a few simulations.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bench.claim import model
from bench.claim.config import Config, ConfigError, with_changes
from bench.claim.formulas import PARAMS, Params
from bench.claim.host import HostCost
from bench.claim.memory import memory

MICROBATCHES = (1, 2, 4, 8)
RECOMPUTE = ("none", "selective", "full")
MAX_CP = 32
MAX_VIRTUAL = 16
LAYOUT_KEYS = ("tp", "pp", "dp", "cp", "virtual_stages", "microbatch", "recompute", "schedule")


def divisors(n: int) -> list[int]:
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _shapes(c: Config) -> Iterator[tuple[int, int, int, int]]:
    """(tp, cp, pp, dp) using every GPU: tp within an NVLink domain and dividing the heads, cp a
    power of two dividing the sequence, pp no more than the layers."""
    n, m = c.gpus, c.model
    for tp in divisors(m.heads):
        if tp > c.gpu.nvlink_domain or n % tp:
            continue
        for cp in (x for x in divisors(m.seq) if x <= MAX_CP and x & (x - 1) == 0):
            if (n // tp) % cp:
                continue
            for pp in divisors(n // (tp * cp)):
                if pp <= m.layers + 2:
                    yield tp, cp, pp, n // (tp * cp * pp)


def _schedules(pp: int, units: int) -> Iterator[tuple[str, int]]:
    if pp == 1:
        yield "1f1b", 1
        return
    yield "gpipe", 1
    yield "1f1b", 1
    for v in range(2, min(units // pp, MAX_VIRTUAL) + 1):
        yield "interleaved-1f1b", v


def layouts(c: Config) -> Iterator[dict]:
    """Every layout of the grid, as [parallel] changes (sequence parallelism wherever tp > 1)."""
    gb = c.parallel.global_batch
    units = c.model.layers + c.software.embedding_in_split + c.software.loss_in_split
    for tp, cp, pp, dp in _shapes(c):
        for mb in MICROBATCHES:
            if gb % (mb * dp):
                continue
            for (schedule, v), redo in itertools.product(_schedules(pp, units), RECOMPUTE):
                yield {
                    "tp": tp,
                    "pp": pp,
                    "dp": dp,
                    "cp": cp,
                    "virtual_stages": v,
                    "microbatch": mb,
                    "recompute": redo,
                    "schedule": schedule,
                    "sequence_parallel": tp > 1,
                }


def candidates(c: Config, progress: Callable[[], None] | None = None) -> tuple[list[Config], int]:
    """(the layouts that are valid and fit in memory, how many layouts were tried)."""
    fit, tried = [], 0
    for change in layouts(c):
        tried += 1
        if progress:
            progress()
        try:
            lay = with_changes(c, **change)
        except ConfigError:
            continue
        if memory(lay).fits:
            fit.append(lay)
    return fit, tried


@dataclass(frozen=True)
class Best:
    step: model.Step
    simulated: int  # candidates simulated before the bound passed the best


def best(cands: list[Config], host: HostCost, pr: Params = PARAMS) -> Best | None:
    """The fastest candidate for a stack with this host cost (exact over the candidates)."""
    bounds = sorted(((model.lower_bound(lay, host, pr), i) for i, lay in enumerate(cands)))
    top, simulated = None, 0
    for bound, i in bounds:
        if top is not None and bound >= top.seconds:
            break
        s = model.step(cands[i], host, pr)
        simulated += 1
        if top is None or s.seconds < top.seconds:
            top = s
    return None if top is None else Best(top, simulated)


def layout_of(c: Config) -> dict:
    p = c.parallel
    return {
        "tp": p.tp,
        "pp": p.pp,
        "dp": p.dp,
        "cp": p.cp,
        "virtual_stages": p.virtual_stages,
        "microbatch": p.microbatch,
        "recompute": p.recompute,
        "schedule": c.schedule,
        "microbatches": c.microbatches,
    }
